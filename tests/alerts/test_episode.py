"""One conversation per account: the reasons a bad week raises join one alert, on real Kafka and
PostgreSQL, a local Slack (incoming webhook and Web API) and a real SMTP server, time moved by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from services.alerts.routing.config import parse_routing
from shared.events import Severity
from shared.settings import Settings
from tests.alerts.clock import ManualClock
from tests.alerts.receivers import SlackReceiver, SmtpReceiver, wait_until
from tests.alerts.support import API_TOKEN, T0, group_event, metric, running, sent, signal
from tests.support.infra import Infra

GROUP_WAIT_SECONDS = 60
CONFIG = parse_routing(
    {
        "defaults": {"timezone": "UTC", "digest_time": "09:00"},
        "lifecycle": {
            "cooldown_hours": 24,
            "clear_after_minutes": 60,
            "group_wait_seconds": GROUP_WAIT_SECONDS,
        },
    }
)
ACME = {
    "name": "Acme Corp",
    "plan": "business",
    "mrr": 4000,
    "csm_name": "Jane",
    "csm_email": "jane@example.com",
    "csm_slack_channel": "#cs-acme",
    "csm_slack_user": "U0JANE",
    "renewal_date": "2027-01-20",
}
COMMENT = "We are evaluating Globex, reports keep timing out."


def bad_week() -> list[Any]:
    """Quiet for ten days, then the champion's NPS 2 naming a competitor, renewal 60 days out:
    the four signals scoring raises within seconds, worded as the engine words them."""
    return [
        signal(
            "acme",
            "usage_decline",
            "w1",
            severity=Severity.MEDIUM,
            summary="product usage down 62% vs the account's 4-week baseline (41 events a week against 108)",
            evidence={"usage_ratio": 0.38, "events_per_week": 41.0, "baseline_events_per_week": 108.0},
            at=T0,
        ),
        signal(
            "acme",
            "detractor_response",
            "r1",
            summary=f"NPS detractor (score 2): “{COMMENT}”",
            evidence={
                "survey_type": "nps",
                "answer": 2,
                "comment": COMMENT,
                "respondent": "champion@acme.test",
            },
            at=T0 + timedelta(seconds=2),
        ),
        signal(
            "acme",
            "competitor_mentioned",
            "m1",
            severity=Severity.MEDIUM,
            summary=f"competitor Globex named in a survey comment: “{COMMENT}”",
            evidence={"competitor": "Globex", "source": "survey", "excerpt": COMMENT},
            at=T0 + timedelta(seconds=3),
        ),
        signal(
            "acme",
            "renewal_at_risk",
            "q1",
            severity=Severity.MEDIUM,
            summary="renewal in 60 days (2027-01-20) while health is yellow (52)",
            evidence={"renewal_date": "2027-01-20", "days_to_renewal": 60.0},
            at=T0 + timedelta(seconds=4),
        ),
    ]


REASON_LINES = [
    f"High · detractor response: NPS detractor (score 2): “{COMMENT}”",
    "Medium · renewal at risk: renewal in 60 days (2027-01-20) while health is yellow (52)",
    f"Medium · competitor mentioned: competitor Globex named in a survey comment: “{COMMENT}”",
    "Medium · usage decline: product usage down 62% vs the account's 4-week baseline "
    "(41 events a week against 108)",
]


async def poll(
    read: Callable[[], Awaitable[str]], done: Callable[[str], bool], timeout: float = 20.0
) -> None:
    """Read (the metrics page) until `done` holds."""
    deadline = time.monotonic() + timeout
    while not done(await read()):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the metrics")
        await asyncio.sleep(0.1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + timedelta(minutes=1))


def settings_for(infra: Infra, smtp: SmtpReceiver, **slack: Any) -> Settings:
    return infra.fresh_settings(
        smtp_port=smtp.port,
        alerts_api_token=API_TOKEN,
        alerts_public_url="http://alerts.test",
        alerts_tick_seconds=3600,
        slack_min_interval_seconds=0,
        delivery_poll_seconds=0.1,
        email_from="churnwatch@example.com",
        **slack,
    )


async def test_the_bad_week_is_one_slack_message_and_one_email_naming_every_reason(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    settings = settings_for(infra, smtp, slack_webhook_url=slack.url)
    async with running(settings, CONFIG, clock) as service:
        await service.publish(group_event("acme", ACME), *bad_week())
        [alert] = await service.wait("acme", lambda a: len(a) == 1 and len(a[0]["reasons"]) == 4)
        assert [(r["signal_type"], r["severity"], r["state"]) for r in alert["reasons"]] == [
            ("detractor_response", "high", "active"),
            ("renewal_at_risk", "medium", "active"),
            ("competitor_mentioned", "medium", "active"),
            ("usage_decline", "medium", "active"),
        ]
        # Named after its worst reason; every occurrence was folded into it.
        assert (alert["signal_type"], alert["severity"], alert["occurrences"]) == (
            "detractor_response",
            "high",
            4,
        )
        assert [s["outcome"] for s in alert["signals"]] == [
            "open:new",
            "update:severity_rose",
            "update:new_reason",
            "update:new_reason",
        ]
        # One first message per address, waiting out the group wait; the rise to high folded into it.
        assert sorted((d["purpose"], d["channel"], d["status"]) for d in alert["deliveries"]) == [
            ("alert", "email", "pending"),
            ("alert", "slack", "pending"),
        ]
        assert slack.posts == [] and smtp.received == []

        clock.advance(seconds=GROUP_WAIT_SECONDS)
        service.runtime.dispatcher.wake()
        [post] = await slack.wait_for_accepted(1)
        [mail] = await smtp.wait_for_accepted(1)
        [alert] = await service.wait("acme", lambda a: len(sent(a[0])) == 2)

        headline = f"Acme Corp: NPS detractor (score 2): “{COMMENT}” (and 3 more reasons)"
        assert post.body["text"] == f"<@U0JANE> {headline}"
        sections = [b["text"]["text"] for b in post.body["blocks"] if b["type"] == "section"]
        reasons = next(s for s in sections if s.startswith("*Reasons, worst first*"))
        assert reasons == "*Reasons, worst first*\n" + "\n".join(f"• {line}" for line in REASON_LINES)
        assert f"*Comment:* {COMMENT}" in "\n".join(sections)  # the lead's evidence, in words

        assert mail.rcpt_tos == ["jane@example.com"] and mail.message["In-Reply-To"] is None
        assert mail.subject == f"[Churnwatch] {headline}"
        text = mail.part("text/plain").replace("\r\n", "\n")
        assert "\nReasons, worst first\n" + "".join(f"  - {line}\n" for line in REASON_LINES) in text
        html = mail.part("text/html")
        assert all(line.split(": ")[0] in html for line in REASON_LINES)

        # The same four signals again (a re-delivery) change nothing, and nothing else was queued.
        duplicates = 'churnwatch_alerts_duplicates_suppressed_total{signal_type="renewal_at_risk"}'
        before = metric(await service.metrics(), duplicates)
        await service.publish(*bad_week())
        await poll(lambda: service.metrics(), lambda text: metric(text, duplicates) == before + 1)
        [alert] = await service.alerts("acme")
        assert len(alert["deliveries"]) == 2 and len(alert["signals"]) == 4
        assert (len(slack.posts), len(smtp.received)) == (1, 1)


async def test_a_new_reason_updates_the_alert_in_place_and_pings_only_when_worse(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    settings = settings_for(infra, smtp, slack_bot_token=slack.token, slack_api_base_url=slack.api_url)
    quiet, detractor, competitor, renewal = bad_week()
    async with running(settings, CONFIG, clock) as service:
        # Quiet for ten days: told once, after the group wait.
        await service.publish(group_event("acme", ACME), quiet)
        await service.wait("acme", lambda a: len(a) == 1 and len(a[0]["deliveries"]) == 2)
        clock.advance(seconds=GROUP_WAIT_SECONDS)
        service.runtime.dispatcher.wake()
        [first] = await slack.wait_for_messages(1)
        [first_mail] = await smtp.wait_for_accepted(1)
        assert first.text.startswith("<@U0JANE> Acme Corp product usage down 62%")

        # A competitor named: not worse, so no new message: the first one is edited in place
        # (chat.update), and it is in tomorrow's digest.
        clock.advance(hours=1)
        await service.publish(competitor)
        [alert] = await service.wait("acme", lambda a: len(a[0]["reasons"]) == 2)
        assert [r["signal_type"] for r in alert["reasons"]] == ["competitor_mentioned", "usage_decline"]
        assert alert["updated_at"] == clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
        edited = await slack.wait_for_edits(first, 1)
        # Named after its worst reason now: both medium, the competitor raised last.
        assert edited.text == (
            "<@U0JANE> Acme Corp competitor Globex named in a survey comment: "
            f"“{COMMENT}” (and 1 more reason)"
        )
        listed = next(b["text"]["text"] for b in edited.blocks if "Reasons, worst first" in str(b))
        assert listed.splitlines()[1:] == [f"• {REASON_LINES[i]}" for i in (2, 3)]
        [alert] = await service.wait("acme", lambda a: len(sent(a[0], "edit")) == 1)
        assert sorted((d["purpose"], d["channel"]) for d in alert["deliveries"]) == [
            ("alert", "email"), ("alert", "slack"), ("edit", "slack"),
        ]
        assert len(slack.messages) == 1 and len(smtp.received) == 1

        # The champion's NPS 2: worse, so a reply in the first message's thread and a threaded email.
        await service.publish(detractor)
        await slack.wait_for_messages(2)
        reply = slack.messages[1]
        assert (reply.thread_ts, reply.channel) == (first.ts, first.channel)
        assert reply.text == (
            f"<@U0JANE> Update: Acme Corp: NPS detractor (score 2): “{COMMENT}” (and 2 more reasons)"
        )
        listed = next(b["text"]["text"] for b in reply.blocks if "Reasons, worst first" in str(b))
        assert listed.splitlines()[1:] == [f"• {REASON_LINES[i]}" for i in (0, 2, 3)]
        mails = await smtp.wait_for_accepted(2)
        assert mails[1].message["In-Reply-To"] == first_mail.message["Message-ID"]

        # Renewal near, not worse than high: in place only.
        await service.publish(renewal)
        [alert] = await service.wait("acme", lambda a: len(a[0]["reasons"]) == 4)
        assert [r["signal_type"] for r in alert["reasons"]] == [
            "detractor_response",
            "renewal_at_risk",
            "competitor_mentioned",
            "usage_decline",
        ]
        # Each change edited the first message too (Slack only); the rise also replied in its thread.
        assert sorted(d["purpose"] for d in alert["deliveries"]) == [
            "alert", "alert", "edit", "edit", "edit", "update", "update",
        ]

        # The detractor clears: after the hysteresis the alert is about what still holds.
        await service.publish(
            signal("acme", "detractor_response", "r1-cleared", status="cleared", at=T0 + timedelta(hours=2))
        )
        await service.wait("acme", lambda a: a[0]["reasons"][0]["clearing_since"] is not None)
        clock.advance(minutes=61)
        assert (await service.tick())["resolved"] == 0
        [alert] = await service.alerts("acme")
        assert (alert["state"], alert["signal_type"], alert["severity"]) == (
            "open",
            "renewal_at_risk",
            "medium",
        )
        assert [(r["signal_type"], r["state"]) for r in alert["reasons"]] == [
            ("renewal_at_risk", "active"),
            ("competitor_mentioned", "active"),
            ("usage_decline", "active"),
            ("detractor_response", "cleared"),
        ]

        # The rest clear: the alert resolves once the last of them has stayed cleared an hour.
        for n, kind in enumerate(("renewal_at_risk", "competitor_mentioned", "usage_decline")):
            await service.publish(signal("acme", kind, f"c{n}", status="cleared", at=T0 + timedelta(hours=3)))
        await service.wait("acme", lambda a: a[0]["clearing_since"] is not None)
        clock.advance(minutes=59)
        assert (await service.tick())["resolved"] == 0
        clock.advance(minutes=2)
        assert (await service.tick())["resolved"] == 1
        [alert] = await service.alerts("acme")
        assert (alert["state"], alert["resolved_reason"]) == ("resolved", "cleared")
        assert {r["state"] for r in alert["reasons"]} == {"cleared"}

        # The next morning's digest shows what joined without a ping.
        clock.set(T0.replace(day=21, hour=9))
        assert (await service.tick())["digests"] == 1
        await wait_until(lambda: len(smtp.accepted) == 3, what="the digest")
        digest = smtp.accepted[2].part("text/plain")
        assert "[medium] competitor Globex named in a survey comment" in digest
        assert "joined the account's open alert" in digest
        assert "[medium] renewal in 60 days" in digest
        assert len(slack.messages) == 2  # the first message and the one reply: nothing else
