"""Delivery on the wall clock: a burst of 50 alerts to one Slack channel arrives paced, all of
them, once each, through a 429; permanent Slack errors are recorded, not retried."""

from __future__ import annotations

from itertools import pairwise

from services.alerts.clock import SystemClock
from services.alerts.routing.config import RoutingConfig
from shared.events import Severity
from tests.alerts.receivers import SlackReceiver, SmtpReceiver
from tests.alerts.support import API_TOKEN, AUTH, group_event, metric, running, signal
from tests.support.infra import Infra

INTERVAL = 0.2  # seconds between messages to one channel (Slack's is ~1 s; shorter keeps the test quick)
BURST = 50


async def test_a_burst_to_one_channel_is_paced_and_nothing_is_dropped(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver
) -> None:
    settings = infra.fresh_settings(
        slack_webhook_url=slack.url,
        smtp_port=smtp.port,
        slack_min_interval_seconds=INTERVAL,
        delivery_poll_seconds=0.1,
        alerts_api_token=API_TOKEN,
        alerts_tick_seconds=3600,
    )
    config = RoutingConfig.model_validate({"defaults": {"channels": ["slack"]}})
    clock = SystemClock()
    async with running(settings, config, clock) as service:
        traits = [
            group_event(f"acct-{i}", {"name": f"Account {i}", "csm_slack_channel": "#cs-team"})
            for i in range(BURST)
        ]
        await service.publish(*traits)
        sent_ok = 'churnwatch_alerts_deliveries_total{channel="slack",outcome="sent",reason="ok"}'
        before = metric(await service.metrics(), sent_ok)
        slack.answer("ok", times=9)
        slack.answer("rate_limited")  # the 10th request: 429 with Retry-After: 1
        await service.publish(
            *[
                signal(
                    f"acct-{i}",
                    "usage_decline",
                    "w1",
                    severity=Severity.MEDIUM,
                    summary=f"usage fell ({i})",
                    at=clock.now(),
                )
                for i in range(BURST)
            ]
        )
        await slack.wait_for_accepted(BURST, timeout=60)

        accepted = slack.accepted
        assert len(accepted) == BURST
        assert sorted(p.body["text"] for p in accepted) == sorted(
            f"Account {i} usage fell ({i})" for i in range(BURST)
        )
        assert all(p.body["channel"] == "#cs-team" for p in accepted)
        arrivals = [p.at for p in slack.posts]
        gaps = [b - a for a, b in pairwise(arrivals)]
        # Paced: never two at once, and sustained at no more than one per interval.
        assert min(gaps) >= INTERVAL * 0.5, gaps
        for i in range(len(arrivals) - 5):
            assert arrivals[i + 5] - arrivals[i] >= 5 * INTERVAL * 0.9, (i, gaps)
        # The 429 paused the channel for its Retry-After before anything else went out.
        limited = next(i for i, p in enumerate(slack.posts) if p.status == 429)
        assert slack.posts[limited + 1].at - slack.posts[limited].at >= 0.95
        assert len(slack.posts) == BURST + 1

        every = [a for i in range(BURST) for a in await service.alerts(f"acct-{i}")]
        assert all(d["status"] == "sent" for a in every for d in a["deliveries"])
        metrics = await service.metrics()
        assert metric(metrics, sent_ok) - before == BURST
        assert 'churnwatch_alerts_delivery_queue_depth{channel="slack"} 0.0' in metrics


async def test_permanent_slack_errors_are_recorded_and_counted(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver
) -> None:
    settings = infra.fresh_settings(
        slack_bot_token=slack.token,
        slack_api_base_url=slack.api_url,
        smtp_port=smtp.port,
        slack_min_interval_seconds=0,
        delivery_poll_seconds=0.1,
        alerts_api_token=API_TOKEN,
        alerts_tick_seconds=3600,
    )
    clock = SystemClock()
    async with running(settings, RoutingConfig(), clock) as service:
        slack.answer("channel_not_found")
        smtp.reject(550)
        await service.publish(
            group_event(
                "gone", {"name": "Gone Inc", "csm_slack_channel": "#archived", "csm_email": "x@example.com"}
            ),
            signal("gone", "payment_issue", "p1", summary="payment failed", at=clock.now()),
        )
        [alert] = await service.wait(
            "gone",
            lambda a: (
                a
                and len(a[0]["deliveries"]) == 2
                and all(d["status"] == "failed" for d in a[0]["deliveries"])
            ),
        )
        by_channel = {d["channel"]: d for d in alert["deliveries"]}
        assert (by_channel["slack"]["attempts"], by_channel["slack"]["last_response"]) == (
            1,
            '{"ok":false,"error":"channel_not_found"}',
        )
        assert (by_channel["email"]["attempts"], by_channel["email"]["last_status_code"]) == (1, 550)
        metrics = await service.metrics()
        assert 'channel="slack",outcome="failed",reason="channel_not_found"' in metrics
        assert 'channel="email",outcome="failed",reason="smtp_550"' in metrics
        assert (await service.client.get(f"/v1/alerts/{alert['id']}", headers=AUTH)).json()["state"] == "open"
