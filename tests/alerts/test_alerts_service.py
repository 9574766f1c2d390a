"""The alerts service on a real Kafka broker and PostgreSQL, talking to local Slack and SMTP."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from deploy.local.processes import free_port
from services.alerts.app import create_app
from shared.events import Envelope, EventType, RiskSignalPayload, Severity, utcnow
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.alerts.receivers import SlackReceiver, SmtpReceiver
from tests.alerts.support import group_event
from tests.support.apps import serving
from tests.support.infra import API_AUTH, Infra
from tests.support.kafka import wait_for_events
from tests.support.processes import ServiceProcess


def risk_signal(
    account_id: str,
    dedupe_key: str,
    summary: str,
    *,
    event_id: str | None = None,
    evidence: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Envelope:
    """A signal dated now unless told: alerts keeps, but does not send, one older than its age limit."""
    signal = RiskSignalPayload(
        signal_type=dedupe_key.split(":")[1],
        severity=Severity.HIGH,
        dedupe_key=dedupe_key,
        summary=summary,
        score=38.0,
        evidence=evidence or {},
    )
    return Envelope(
        event_id=event_id or f"s-{uuid.uuid4()}",
        type=EventType.RISK_SIGNAL,
        account_id=account_id,
        occurred_at=at or utcnow(),
        received_at=utcnow(),
        source="scoring",
        payload=signal.model_dump(mode="json"),
    )


@asynccontextmanager
async def running_alerts(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as client:
        yield client


@asynccontextmanager
async def publishing(settings: Settings) -> AsyncIterator[EventPublisher]:
    await ensure_topics(settings)  # the broker does not auto-create topics
    publisher = EventPublisher(settings, "test")
    try:
        yield publisher
    finally:
        await publisher.stop()


async def alerts_of(client: httpx.AsyncClient, account_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/accounts/{account_id}/alerts", headers=API_AUTH)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["account_id"] == account_id
    alerts: list[dict[str, Any]] = body["alerts"]
    return alerts


async def wait_for_deliveries(
    client: httpx.AsyncClient,
    account_id: str,
    done: Callable[[list[dict[str, Any]]], bool],
    timeout: float = 20.0,
) -> list[dict[str, Any]]:
    """Poll the alerts API until `done(alerts)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        alerts = await alerts_of(client, account_id)
        if done(alerts):
            return alerts
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries never reached the expected state: {alerts}")
        await asyncio.sleep(0.1)


def all_sent(expected_alerts: int) -> Callable[[list[dict[str, Any]]], bool]:
    def done(alerts: list[dict[str, Any]]) -> bool:
        return len(alerts) == expected_alerts and all(
            d["status"] == "sent" for a in alerts for d in a["deliveries"]
        )

    return done


async def test_one_notification_per_dedupe_key_across_duplicates_and_restarts(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver
) -> None:
    settings = infra.fresh_settings(
        slack_webhook_url=slack.url, smtp_port=smtp.port, public_url="http://churnwatch.test"
    )
    detractor = risk_signal(
        "acme",
        "acme:nps_detractor:r1",
        "NPS detractor (score 3)",
        evidence={"detractor_comment": "Reports are too slow since the update"},
    )
    async with publishing(settings) as publisher:
        await publisher.publish(
            [
                group_event(
                    "acme",
                    {"name": "Acme Corp", "csm_email": "csm@acme.test", "csm_slack_channel": "#cs-acme"},
                ),
                detractor,
            ]
        )

        async with running_alerts(settings) as client:
            [post] = await slack.wait_for_accepted(1)
            [mail] = await smtp.wait_for_accepted(1)
            assert "Acme Corp" in post.body["text"] and "NPS detractor" in post.body["text"]
            assert post.body["channel"] == "#cs-acme"
            assert "http://churnwatch.test/v1/accounts/acme/health" in str(post.body["blocks"])
            assert any("Reports are too slow" in str(b) for b in post.body["blocks"])
            assert mail.rcpt_tos == ["csm@acme.test"]
            assert mail.subject == "[Churnwatch] Acme Corp: NPS detractor (score 3)"
            assert "Reports are too slow since the update" in mail.part("text/plain")
            assert "Reports are too slow since the update" in mail.part("text/html")

            [alert] = await wait_for_deliveries(client, "acme", all_sent(1))
            assert alert["dedupe_key"] == "acme:nps_detractor:r1"
            assert alert["signal_event_id"] == detractor.event_id
            assert sorted(
                (d["channel"], d["recipient"], d["attempts"], d["last_status_code"])
                for d in alert["deliveries"]
            ) == [("email", "csm@acme.test", 1, 250), ("slack", "#cs-acme", 1, 200)]
            assert all(d["sent_at"] for d in alert["deliveries"])

            # The same signal again: redelivered as is, and re-emitted under a new event id. And
            # a new reason for the account: it joins the open alert, without a message.
            again = risk_signal("acme", "acme:nps_detractor:r1", "NPS detractor (score 3)")
            tickets = risk_signal("acme", "acme:ticket_spike:w47", "Support tickets doubled")
            await publisher.publish([detractor, again, tickets])
            # Same account, same partition: once the later signal is in the alert, both
            # duplicates before it have been consumed.
            [alert] = await wait_for_deliveries(client, "acme", reasons(2))
            assert alert["dedupe_key"] == "acme:nps_detractor:r1"
            assert [s["outcome"] for s in alert["signals"]] == ["open:new", "update:new_reason"]
            assert (len(slack.posts), len(smtp.received)) == (1, 1)

            metrics = (await client.get("/metrics")).text
            assert 'churnwatch_alerts_duplicates_suppressed_total{signal_type="nps_detractor"}' in metrics
            assert 'churnwatch_alerts_deliveries_total{channel="slack",outcome="sent",reason="ok"}' in metrics
            assert "churnwatch_alerts_delivery_latency_seconds_bucket" in metrics

        # A restart on the same database and topics sends nothing again...
        async with running_alerts(settings) as client:
            await publisher.publish(
                [
                    risk_signal("acme", "acme:nps_detractor:r1", "NPS detractor (score 3)"),
                    risk_signal("acme", "acme:champion_left:c1", "Champion left"),
                    group_event("globex", {"name": "Globex", "csm_email": "csm@globex.test"}),
                    risk_signal("globex", "globex:champion_left:c2", "Champion left"),
                ]
            )
            # ...only the one new alert (the other new signal joins acme's).
            await slack.wait_for_accepted(2)
            await smtp.wait_for_accepted(2)
            await wait_for_deliveries(client, "acme", reasons(3))
            [other] = await wait_for_deliveries(client, "globex", all_sent(1))
            assert "Globex: Champion left" in slack.accepted[1].body["text"]
            [alert] = await alerts_of(client, "acme")

    assert len(slack.posts) == 2
    assert len(smtp.received) == 2
    assert all(d["attempts"] == 1 for a in (alert, other) for d in a["deliveries"])


def reasons(count: int) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda alerts: len(alerts) == 1 and len(alerts[0]["reasons"]) == count


async def test_retries_honour_retry_after_and_permanent_errors_are_not_retried(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver
) -> None:
    settings = infra.fresh_settings(
        slack_webhook_url=slack.url, smtp_port=smtp.port, alert_default_email="cs-team@example.com"
    )
    async with publishing(settings) as publisher, running_alerts(settings) as client:
        # 429 with Retry-After: 1, then ok: delivered exactly once, after the wait.
        slack.answer("rate_limited", times=1)
        await publisher.publish([risk_signal("globex", "globex:usage_drop:w1", "Usage fell 60%")])
        [alert] = await wait_for_deliveries(client, "globex", all_sent(1))
        assert [p.status for p in slack.posts] == [429, 200]
        assert slack.posts[1].at - slack.posts[0].at >= 0.95
        by_channel = {d["channel"]: d for d in alert["deliveries"]}
        assert by_channel["slack"]["recipient"] == "webhook-default-channel"
        assert (by_channel["slack"]["attempts"], by_channel["slack"]["last_status_code"]) == (2, 200)
        # No CSM email known for globex: the default address gets it.
        assert by_channel["email"]["recipient"] == "cs-team@example.com"
        assert smtp.accepted[0].rcpt_tos == ["cs-team@example.com"]

        # Slack 400 and SMTP 550 are permanent: recorded failed after one attempt. (Another
        # account: one of globex's would join its open alert without a message.)
        slack.answer("invalid_payload", times=1)
        smtp.reject(550, times=1)
        await publisher.publish([risk_signal("umbrella", "umbrella:payment_failed:i9", "Payment failed")])

        def bad_one_failed(alerts: list[dict[str, Any]]) -> bool:
            return len(alerts) == 1 and all(d["status"] == "failed" for d in alerts[0]["deliveries"])

        alerts = await wait_for_deliveries(client, "umbrella", bad_one_failed)
        failed = {d["channel"]: d for d in alerts[0]["deliveries"]}
        assert (
            failed["slack"]["attempts"],
            failed["slack"]["last_status_code"],
            failed["slack"]["last_response"],
        ) == (1, 400, "invalid_payload")
        assert (failed["email"]["attempts"], failed["email"]["last_status_code"]) == (1, 550)
        assert failed["slack"]["sent_at"] is None

        # Every attempt is in the alert history: number, times, outcome, status or reply code, response.
        def log(d: dict[str, Any]) -> list[tuple[Any, ...]]:
            return [
                (a["attempt"], a["outcome"], a["reason"], a["status_code"], a["response"], a["in_doubt"])
                for a in d["attempt_log"]
            ]

        assert log(by_channel["slack"]) == [
            (1, "retry", "http_429", 429, "rate_limited", False),
            (2, "sent", "ok", 200, "ok", False),
        ]
        assert by_channel["slack"]["attempt_log"][0]["finished_at"] <= by_channel["slack"]["attempt_log"][1][
            "started_at"
        ]
        assert log(by_channel["email"])[0][:4] == (1, "sent", "ok", 250)
        assert log(failed["slack"]) == [(1, "failed", "http_400", 400, "invalid_payload", False)]
        [(attempt, outcome, reason, code, response, _)] = log(failed["email"])
        assert (attempt, outcome, reason, code) == (1, "failed", "smtp_550", 550)
        assert "rejected by the test SMTP receiver" in response

        # A later alert still goes out, and the failed one was never tried again.
        await publisher.publish([risk_signal("vandelay", "vandelay:renewal_risk:q1", "Renewal in 60 days")])
        await wait_for_deliveries(
            client,
            "vandelay",
            lambda alerts: len(alerts) == 1 and all(d["status"] == "sent" for d in alerts[0]["deliveries"]),
        )
        assert [p.status for p in slack.posts] == [429, 200, 400, 200]
        assert [m.accepted for m in smtp.received] == [True, False, True]
        assert sum("Payment failed" in p.body["text"] for p in slack.posts) == 1

        metrics = (await client.get("/metrics")).text
        counter = "churnwatch_alerts_deliveries_total"
        assert f'{counter}{{channel="slack",outcome="retry",reason="http_429"}}' in metrics
        assert f'{counter}{{channel="email",outcome="failed",reason="smtp_550"}}' in metrics


async def test_unroutable_alert_is_kept_and_a_malformed_signal_dead_lettered(infra: Infra) -> None:
    settings = infra.fresh_settings(slack_webhook_url=None, alert_default_email=None)
    malformed = Envelope(
        event_id="bad-1",
        type=EventType.RISK_SIGNAL,
        account_id="initech",
        occurred_at=utcnow(),
        received_at=utcnow(),
        source="scoring",
        payload={"signal_type": "usage_drop"},
    )  # no severity, key or summary
    async with publishing(settings) as publisher, running_alerts(settings) as client:
        await publisher.publish(
            [
                malformed,
                group_event("initech", {"name": "Initech"}),
                risk_signal("initech", "initech:usage_drop:w2", "Usage fell 40%"),
            ]
        )
        [alert] = await wait_for_deliveries(client, "initech", lambda alerts: len(alerts) == 1)
        assert alert["deliveries"] == []
        metrics = (await client.get("/metrics")).text
        line = next(x for x in metrics.splitlines() if x.startswith("churnwatch_alerts_unroutable_total "))
        assert float(line.split()[1]) >= 1
        dead = await wait_for_events(settings, publisher.topics.dead_letter, 1)
        assert [e.event_id for e in dead] == ["bad-1"]


async def test_api_validates_its_query(settings: Settings) -> None:
    async with running_alerts(settings) as client:
        response = await client.get("/v1/accounts/acme/alerts", params={"limit": 0}, headers=API_AUTH)
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_request"
        empty = await client.get("/v1/accounts/nobody/alerts", headers=API_AUTH)
        assert empty.json() == {"account_id": "nobody", "alerts": []}


async def test_ready_once_consuming(settings: Settings) -> None:
    async with running_alerts(settings) as client:

        async def ready() -> bool:
            return (await client.get("/readyz")).status_code == 200

        deadline = time.monotonic() + 20
        while not await ready():
            assert time.monotonic() < deadline, (await client.get("/readyz")).text
            await asyncio.sleep(0.1)
        assert (await client.get("/readyz")).json()["checks"] == {"database": True, "kafka": True}


async def test_runs_as_a_process_and_stops_gracefully(
    infra: Infra, slack: SlackReceiver, tmp_path: Path
) -> None:
    settings = infra.fresh_settings(slack_webhook_url=slack.url)
    process = ServiceProcess("alerts", settings, free_port(), tmp_path)
    await asyncio.to_thread(process.start)
    try:
        async with publishing(settings) as publisher:
            await publisher.publish([risk_signal("hooli", "hooli:usage_drop:w3", "Usage fell 30%")])
        [post] = await slack.wait_for_accepted(1)
        assert "hooli: Usage fell 30%" in post.body["text"]
    finally:
        await asyncio.to_thread(process.stop)
    assert process.process is not None and process.process.returncode == 0
