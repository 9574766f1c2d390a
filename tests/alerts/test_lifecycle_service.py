# ruff: noqa: RUF001  (typographic minus signs in summaries)
"""The alerts service on real Kafka and PostgreSQL, local Slack (Web API) and a real SMTP server,
with time moved by hand: routing, dedupe and cooldown, hysteresis, snooze, links, escalation,
digests, quiet hours, preferences and API auth."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from services.alerts.render.playbook import BUILT_IN
from services.alerts.routing.config import RoutingConfig, parse_routing
from shared.events import Severity
from shared.settings import Settings
from tests.alerts.clock import ManualClock
from tests.alerts.receivers import SlackReceiver, SmtpReceiver, wait_until
from tests.alerts.support import API_TOKEN, AUTH, T0, group_event, metric, running, sent, signal, signals_of
from tests.support.infra import API_AUTH, Infra

CONFIG = parse_routing(
    {
        "defaults": {"timezone": "UTC", "digest_time": "09:00"},
        "fallback": {"slack_channel": "#cs-alerts", "email": "cs-team@example.com"},
        "segments": [
            {
                "name": "enterprise",
                "match": {"plans": ["enterprise"]},
                "escalation": {
                    "after_hours": 4,
                    "contacts": [{"name": "Dana", "email": "dana@example.com", "slack_user": "U0DANA"}],
                },
            },
            {"name": "low_touch", "match": {"max_mrr": 500}, "delivery": "digest"},
        ],
        "lifecycle": {"cooldown_hours": 24, "clear_after_minutes": 60},
        "links": {"account": "https://crm.example.com/accounts/{account_id}"},
        "playbook": {"entered_red": "Call the champion within two days."},
    }
)
ACME = {
    "name": "Acme Corp",
    "plan": "enterprise",
    "mrr": 9000,
    "csm_name": "Jane",
    "csm_email": "jane@example.com",
    "csm_slack_channel": "#cs-acme",
    "csm_slack_user": "U0JANE",
}
# A second enterprise account: a signal about another account is a new alert of its own.
INITECH = {
    "name": "Initech",
    "plan": "enterprise",
    "mrr": 7000,
    "csm_name": "Bill",
    "csm_email": "bill@example.com",
    "csm_slack_channel": "#cs-initech",
}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0 + timedelta(hours=1))


def web_api_settings(infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.token,
        "slack_api_base_url": slack.api_url,
        "smtp_port": smtp.port,
        "alerts_api_token": API_TOKEN,
        "alerts_public_url": "http://alerts.test",
        "alerts_tick_seconds": 3600,
        "slack_min_interval_seconds": 0,
        "delivery_poll_seconds": 0.1,
        "email_from": "churnwatch@example.com",
    }
    values.update(overrides)
    return infra.fresh_settings(**values)


def with_recipient(token: str, recipient: str) -> str:
    """The token with another recipient in its claims and its original signature."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["rcp"] != recipient
    claims["rcp"] = recipient
    forged = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode()).rstrip(b"=")
    return f"{header}.{forged.decode()}.{signature}"


def buttons(message_blocks: list[dict[str, Any]]) -> dict[str, str]:
    actions = next(b for b in message_blocks if b["type"] == "actions")
    return {e["text"]["text"]: e["url"] for e in actions["elements"]}


async def test_routing_by_owner_and_segment_and_team_preferences(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    async with running(web_api_settings(infra, slack, smtp), CONFIG, clock) as service:
        await service.publish(
            group_event("acme", ACME),
            group_event("small", {"name": "Small Co", "mrr": 100, "csm_email": "sam@example.com"}),
            signal(
                "acme",
                "entered_red",
                "e1",
                summary="turned red: usage −45%, detractor NPS 3",
                score=38,
                previous_score=55,
                band="red",
                previous_band="yellow",
                evidence={"comment": "Exports keep failing"},
            ),
            signal("small", "usage_decline", "w1", severity=Severity.MEDIUM, summary="usage down 40%"),
        )
        [message] = await slack.wait_for_messages(1)
        [mail] = await smtp.wait_for_accepted(1)
        # The owner: their account channel with a mention, and their email.
        assert message.channel == slack.channel_id("#cs-acme")
        assert message.text.startswith("<@U0JANE> Acme Corp turned red: usage −45%, detractor NPS 3")
        assert "https://crm.example.com/accounts/acme" in str(message.blocks)
        assert "Call the champion within two days." in str(message.blocks)
        assert mail.rcpt_tos == ["jane@example.com"]
        assert mail.subject == "[Churnwatch] Acme Corp turned red: usage −45%, detractor NPS 3"
        assert "Exports keep failing" in mail.part("text/plain")
        # Low touch: nothing now, an item for tomorrow's digest.
        [small] = await service.wait("small", lambda a: len(a) == 1)
        assert small["deliveries"] == [] and small["segment"] == "low_touch"

        # The CS lead follows every enterprise account at high severity, by DM and email.
        response = await service.client.put(
            "/v1/recipients/lead@example.com/preferences",
            headers=AUTH,
            json={
                "scope": "team",
                "segments": ["enterprise"],
                "min_severity": "high",
                "slack_user": "U0LEAD",
                "timezone": "Europe/Berlin",
                "updated_by": "admin@example.com",
            },
        )
        assert response.status_code == 200, response.text
        assert response.json()["effective"]["channels"] == ["slack", "email"]
        # (A low signal about acme joins its open alert for Jane's digest; the lead asked for high.)
        await service.publish(
            group_event("initech", INITECH),
            signal("initech", "champion_change", "c1", summary="champion left"),
            signal("acme", "ticket_spike", "t1", severity=Severity.LOW, summary="tickets up"),
        )
        await wait_until(lambda: len(slack.in_channel("U0LEAD")) == 1, what="the lead's DM")
        await smtp.wait_for_accepted(3)  # jane's first one, bill x1 + lead x1 (initech)
        leads = [m for m in smtp.accepted if m.rcpt_tos == ["lead@example.com"]]
        assert [m.subject for m in leads] == ["[Churnwatch] Initech champion left"]
        [acme] = await service.wait("acme", lambda a: len(a[0]["reasons"]) == 2)
        # The first message to Jane's channel and inbox, and that Slack message edited to list
        # the new reason (the bot token's chat.update): no new message.
        assert sorted(d["purpose"] for d in acme["deliveries"]) == ["alert", "alert", "edit"]

        # Next morning at 09:00 UTC: the digest for Sam, and Jane's with what joined her alert.
        clock.set(T0.replace(day=21, hour=9, minute=0))
        assert (await service.tick())["digests"] == 2
        def digests() -> list[Any]:
            return [m for m in smtp.accepted if "Daily digest" in m.subject]

        await wait_until(lambda: len(digests()) == 2, what="the digests")
        digest = next(m for m in smtp.accepted if m.rcpt_tos == ["sam@example.com"])
        assert digest.subject == "[Churnwatch] Daily digest 2026-11-21: 1 signal on 1 account"
        assert "[medium] usage down 40%" in digest.part("text/plain")
        [janes] = [m for m in digests() if m.rcpt_tos == ["jane@example.com"]]
        assert "[low] tickets up (joined the account's open alert)" in janes.part("text/plain")
        assert (await service.tick())["digests"] == 0  # one digest a day


async def test_dedupe_updates_threads_hysteresis_and_cooldown(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    duplicates = 'churnwatch_alerts_duplicates_suppressed_total{signal_type="usage_decline"}'
    cooldowns = 'churnwatch_alerts_updated_total{reason="cooldown",signal_type="usage_decline"}'
    async with running(web_api_settings(infra, slack, smtp), CONFIG, clock) as service:
        before = await service.metrics()
        await service.publish(
            group_event("acme", ACME),
            signal("acme", "usage_decline", "w1", severity=Severity.MEDIUM, summary="usage −20%"),
        )
        await slack.wait_for_messages(1)
        first = slack.messages[0]
        # The same occurrence again, and a new occurrence of the same condition: no new ping.
        await service.publish(
            signal("acme", "usage_decline", "w1", severity=Severity.MEDIUM),
            signal("acme", "usage_decline", "w2", severity=Severity.MEDIUM, summary="usage −25%"),
        )
        [alert] = await service.wait("acme", lambda a: a and a[0]["occurrences"] == 2)
        assert signals_of(alert) == ["open:new", "update:already_open"]
        # Worse, with new evidence: a follow-up in the first message's thread, shown in the
        # channel too, about this occurrence.
        await service.publish(
            signal(
                "acme",
                "usage_decline",
                "w3",
                summary="usage −45%",
                score=41,
                previous_score=58,
                band="red",
                previous_band="yellow",
                evidence={"comment": "Exports broke again", "ticket_subject": "CSV export times out"},
                at=T0 + timedelta(minutes=20),
            )
        )
        await slack.wait_for_messages(2)
        update = slack.messages[1]
        assert (update.thread_ts, update.broadcast, update.channel) == (first.ts, True, first.channel)
        assert (
            update.text
            == "<@U0JANE> Update: Acme Corp usage −45% — Health 41 (−17 from 58) · red, was yellow"
        )
        sections = [b["text"]["text"] for b in update.blocks if b["type"] in ("header", "section")]
        assert sections == [
            "Update: Acme Corp usage −45%",
            "<@U0JANE> *<https://crm.example.com/accounts/acme|Acme Corp>* — usage −45%\n"
            "Health 41 (−17 from 58) · red, was yellow",
            "*Evidence*\n*Comment:* Exports broke again\n*Ticket subject:* CSV export times out",
            f"*Suggested next step*\n{BUILT_IN['usage_decline']}",
        ]
        [context] = [b for b in update.blocks if b["type"] == "context"]
        assert [e["text"] for e in context["elements"]] == [
            "Seen 3 times since 2026-11-20 10:00 UTC (latest 2026-11-20 10:20 UTC)",
            "Account `acme`",
        ]
        mails = await smtp.wait_for_accepted(2)
        assert mails[1].message["In-Reply-To"] == mails[0].message["Message-ID"]  # threaded in mail too
        assert mails[1].subject == "[Churnwatch] Update: Acme Corp usage −45%"
        text = mails[1].part("text/plain").replace("\r\n", "\n")  # SMTP carries CRLF line ends
        links = dict(re.findall(r"^(Acknowledge|Snooze|Resolve|Not useful\?):? +(\S+)$", text, re.M))
        assert text == "\n".join(
            [
                "Update: Acme Corp usage −45%",
                "",
                "What changed",
                "  usage −45%",
                "  Health 41 (−17 from 58) · red, was yellow",
                "  Churn risk · severity high · usage decline · MRR 9,000",
                "",
                "Evidence",
                "  Comment: Exports broke again",
                "  Ticket subject: CSV export times out",
                "",
                "Suggested next step",
                f"  {BUILT_IN['usage_decline']}",
                "",
                "Seen 3 times since 2026-11-20 10:00 UTC (latest 2026-11-20 10:20 UTC).",
                "",
                "Open the account:  https://crm.example.com/accounts/acme",
                f"Acknowledge:       {links['Acknowledge']}",
                f"Snooze:            {links['Snooze']}",
                f"Resolve:           {links['Resolve']}",
                f"Not useful?        {links['Not useful?']}",
                "",
            ]
        )
        assert all(url.startswith("http://alerts.test/v1/alert-links/") for url in links.values())

        # Cleared, raised again within the hysteresis, cleared again: resolved only an hour later.
        clock.advance(minutes=5)
        await service.publish(
            signal("acme", "usage_decline", "c1", status="cleared", at=T0 + timedelta(hours=1))
        )
        await service.wait("acme", lambda a: a[0]["clearing_since"] is not None)
        clock.advance(minutes=30)
        await service.publish(signal("acme", "usage_decline", "w4", at=T0 + timedelta(hours=2)))
        await service.wait("acme", lambda a: a[0]["clearing_since"] is None)
        await service.publish(
            signal("acme", "usage_decline", "c2", status="cleared", at=T0 + timedelta(hours=3))
        )
        await service.wait("acme", lambda a: a[0]["clearing_since"] is not None)
        clock.advance(minutes=59)
        assert (await service.tick())["resolved"] == 0
        clock.advance(minutes=2)
        assert (await service.tick())["resolved"] == 1
        [alert] = await service.alerts("acme")
        assert (alert["state"], alert["resolved_reason"]) == ("resolved", "cleared")

        # Flapping: raised again within the 24 h cooldown reopens it quietly, for the digest.
        clock.advance(hours=2)
        await service.publish(signal("acme", "usage_decline", "w5", at=T0 + timedelta(hours=5)))
        [alert] = await service.wait("acme", lambda a: a[0]["state"] == "open")
        assert alert["reopened_count"] == 1 and signals_of(alert)[-1] == "reopen:cooldown"
        assert alert["escalate_at"] is not None  # quiet, but still escalates if nobody acts
        # After the cooldown, a new condition is a new alert and a new ping.
        clock.advance(hours=1)
        await service.publish(
            signal("acme", "usage_decline", "c3", status="cleared", at=T0 + timedelta(hours=6))
        )
        await service.wait("acme", lambda a: a[0]["clearing_since"] is not None)
        clock.advance(hours=25)
        await service.tick()
        await service.publish(signal("acme", "usage_decline", "w6", at=T0 + timedelta(hours=31)))
        alerts = await service.wait("acme", lambda a: len(a) == 2 and sent(a[0]))
        assert [a["state"] for a in alerts] == ["open", "resolved"]
        await slack.wait_for_messages(3)
        assert len(slack.messages) == 3  # first, the worse update, and the new alert: nothing else

        metrics = await service.metrics()
        assert metric(metrics, duplicates) - metric(before, duplicates) == 1
        assert metric(metrics, cooldowns) - metric(before, cooldowns) == 1


async def test_snooze_until_and_its_end(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    async with running(web_api_settings(infra, slack, smtp), CONFIG, clock) as service:
        await service.publish(
            group_event("acme", ACME), signal("acme", "payment_issue", "i1", summary="payment failed")
        )
        [alert] = await service.wait("acme", lambda a: a and sent(a[0]))
        await slack.wait_for_messages(1)
        bad = await service.client.post(
            f"/v1/alerts/{alert['id']}/snooze",
            headers=AUTH,
            json={"actor": "jane@example.com", "until": "2020-01-01T00:00:00Z", "reason": "x"},
        )
        assert (bad.status_code, bad.json()["errors"][0]["field"]) == (400, "until")
        response = await service.client.post(
            f"/v1/alerts/{alert['id']}/snooze",
            headers=AUTH,
            json={"actor": "jane@example.com", "hours": 48, "reason": "billing is on it until Monday"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "snoozed"
        # A worse occurrence while snoozed: recorded, nobody pinged.
        await service.publish(signal("acme", "payment_issue", "i2", summary="second payment failed"))
        [alert] = await service.wait("acme", lambda a: a[0]["occurrences"] == 2)
        assert signals_of(alert)[-1] == "update:snoozed"
        clock.advance(hours=47)
        assert (await service.tick())["snoozes_ended"] == 0
        clock.advance(hours=2)
        assert (await service.tick())["snoozes_ended"] == 1
        await slack.wait_for_messages(2)
        reminder = slack.messages[1]
        assert reminder.thread_ts == slack.messages[0].ts
        assert "Snooze ended: Acme Corp second payment failed" in reminder.text
        assert "billing is on it until Monday" in str(reminder.blocks)
        assert (await service.tick())["snoozes_ended"] == 0
        [alert] = await service.alerts("acme")
        assert alert["state"] == "open"
        assert [a["action"] for a in alert["actions"]] == ["snooze", "snooze_ended"]
        assert len(slack.messages) == 2


async def test_acknowledge_and_feedback_via_signed_links(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    async with running(web_api_settings(infra, slack, smtp), CONFIG, clock) as service:
        await service.publish(
            group_event("acme", ACME), signal("acme", "entered_red", "e1", summary="turned red")
        )
        [message] = await slack.wait_for_messages(1)
        links = {
            name: urlparse(url).path for name, url in buttons(message.blocks).items() if "alert-links" in url
        }
        assert set(links) == {"Acknowledge", "Snooze…", "Resolve…", "Not useful?"}

        page = await service.client.get(links["Acknowledge"])
        assert page.status_code == 200 and "Acknowledge this alert?" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        [alert] = await service.alerts("acme")
        assert alert["state"] == "open"  # opening the link changes nothing
        done = await service.client.post(links["Acknowledge"], data={"actor": "Jane"})
        assert done.status_code == 200 and "Acknowledged" in done.text
        [alert] = await service.alerts("acme")
        assert (alert["state"], alert["acknowledged_by"]) == ("acknowledged", "Jane")
        assert [(a["action"], a["via"], a["details"]) for a in alert["actions"]] == [
            ("acknowledge", "link", {"link_recipient": "jane@example.com"})
        ]

        # Acknowledged: no escalation later.
        clock.advance(hours=5)
        assert (await service.tick())["escalated"] == 0

        # The feedback link was signed for Jane: her verdict, whatever name the form carries.
        form = await service.client.get(links["Not useful?"])
        assert "Recorded as jane@example.com" in form.text and "name='actor'" not in form.text
        feedback = await service.client.post(
            links["Not useful?"], data={"useful": "no", "comment": "known issue", "actor": "mallory"}
        )
        assert feedback.status_code == 200 and "not useful" in feedback.text
        # Replaying it changes Jane's verdict; it cannot add another person's.
        again = await service.client.post(links["Not useful?"], data={"useful": "no", "actor": "eve"})
        assert again.status_code == 200
        [alert] = await service.alerts("acme")
        assert [(f["actor"], f["useful"]) for f in alert["feedback"]] == [("jane@example.com", False)]
        # The same link with its recipient changed to someone else's is refused, and records nothing.
        forged = (
            links["Not useful?"].rsplit("/", 1)[0]
            + "/"
            + with_recipient(links["Not useful?"].rsplit("/", 1)[1], "mallory@example.com")
        )
        assert (await service.client.get(forged)).status_code == 400
        refused = await service.client.post(forged, data={"useful": "yes"})
        assert refused.status_code == 400 and "not valid" in refused.text
        [alert] = await service.alerts("acme")
        assert [(f["actor"], f["useful"]) for f in alert["feedback"]] == [("jane@example.com", False)]
        summary = (await service.client.get("/v1/alerts/feedback", headers=AUTH)).json()
        assert summary["signal_types"] == [
            {"signal_type": "entered_red", "verdicts": 1, "not_useful": 1, "false_positive_rate": 1.0}
        ]
        assert (
            'churnwatch_alerts_false_positive_ratio{signal_type="entered_red"} 1.0' in await service.metrics()
        )

        tampered = links["Acknowledge"][:-3] + ("AAA" if not links["Acknowledge"].endswith("AAA") else "BBB")
        assert (await service.client.get(tampered)).status_code == 400
        clock.advance(days=15)
        expired = await service.client.post(links["Snooze…"], data={"hours": "24", "reason": "later"})
        assert expired.status_code == 410 and "expired" in expired.text


async def test_snooze_feedback_and_resolve_via_signed_links_end_to_end(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    async with running(web_api_settings(infra, slack, smtp), CONFIG, clock) as service:
        await service.publish(
            group_event("acme", ACME), signal("acme", "payment_issue", "p1", summary="payment failed")
        )
        [message] = await slack.wait_for_messages(1)
        [mail] = await smtp.wait_for_accepted(1)
        in_slack = {
            name: urlparse(url).path for name, url in buttons(message.blocks).items() if "alert-links" in url
        }
        text = mail.part("text/plain").replace("\r\n", "\n")
        in_mail = {
            name: urlparse(url).path
            for name, url in re.findall(r"^(Snooze|Resolve|Not useful\?):? +(\S+)$", text, re.M)
        }
        [alert] = await service.alerts("acme")
        before = await service.metrics()

        # Snooze from Slack: the page asks for a duration and a reason; opening it changes nothing.
        page = await service.client.get(in_slack["Snooze…"])
        assert page.status_code == 200 and "Snooze this alert" in page.text and "name='hours'" in page.text
        assert page.headers["cache-control"] == "no-store"
        assert (await service.alerts("acme"))[0]["state"] == "open"
        no_reason = await service.client.post(in_slack["Snooze…"], data={"hours": "24", "reason": " "})
        assert no_reason.status_code == 400 and "needs a reason" in no_reason.text
        snoozed = await service.client.post(
            in_slack["Snooze…"], data={"hours": "72", "reason": "waiting on finance", "actor": "Jane"}
        )
        until = clock.now() + timedelta(hours=72)
        assert snoozed.status_code == 200
        assert f"Snoozed until {until:%Y-%m-%d %H:%M} UTC." in snoozed.text
        [alert] = await service.alerts("acme")
        assert (alert["state"], alert["snooze_reason"], alert["snoozed_until"]) == (
            "snoozed",
            "waiting on finance",
            until.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        assert [(a["action"], a["actor"], a["via"], a["details"]) for a in alert["actions"]] == [
            (
                "snooze",
                "Jane",
                "link",
                {
                    "until": until.isoformat(),
                    "reason": "waiting on finance",
                    "link_recipient": "jane@example.com",
                },
            )
        ]

        # Feedback from the email: useful, with a comment, as Jane (the link's recipient).
        page = await service.client.get(in_mail["Not useful?"])
        assert page.status_code == 200 and "Was this alert useful?" in page.text
        useful = await service.client.post(
            in_mail["Not useful?"], data={"useful": "yes", "comment": "caught it early"}
        )
        assert useful.status_code == 200 and "Thanks: marked useful." in useful.text
        [alert] = await service.alerts("acme")
        assert [(f["actor"], f["useful"], f["comment"]) for f in alert["feedback"]] == [
            ("jane@example.com", True, "caught it early")
        ]
        summary = (await service.client.get("/v1/alerts/feedback", headers=AUTH)).json()
        assert summary["signal_types"] == [
            {"signal_type": "payment_issue", "verdicts": 1, "not_useful": 0, "false_positive_rate": 0.0}
        ]

        # Resolve from the email: asked first, then done, once.
        page = await service.client.get(in_mail["Resolve"])
        assert page.status_code == 200 and "Resolve this alert?" in page.text
        assert (await service.alerts("acme"))[0]["state"] == "snoozed"
        resolved = await service.client.post(
            in_mail["Resolve"], data={"reason": "card updated", "actor": "jane@example.com"}
        )
        assert resolved.status_code == 200 and "Resolved." in resolved.text
        [alert] = await service.alerts("acme")
        assert (alert["state"], alert["resolved_reason"], alert["resolved_by"]) == (
            "resolved",
            "manual: card updated",
            "jane@example.com",
        )
        assert alert["actions"][-1] == {
            **alert["actions"][-1],
            "action": "resolve",
            "via": "link",
            "details": {"reason": "manual: card updated", "link_recipient": "jane@example.com"},
        }
        again = await service.client.post(in_mail["Resolve"], data={"reason": "twice"})
        assert again.status_code == 200
        assert [a["action"] for a in (await service.alerts("acme"))[0]["actions"]] == [
            "snooze",
            "feedback",
            "resolve",
        ]
        # Nothing left to snooze; the snooze's end brings no reminder.
        late = await service.client.post(in_slack["Snooze…"], data={"hours": "24", "reason": "x"})
        assert late.status_code == 409 and "nothing to snooze" in late.text
        clock.advance(hours=73)
        assert (await service.tick())["snoozes_ended"] == 0
        assert len(slack.messages) == 1

        metrics = await service.metrics()
        for action in ("snoozed", "resolved"):
            labels = f'action="{action}",signal_type="payment_issue",via="link"'
            sample = f"churnwatch_alerts_lifecycle_total{{{labels}}}"
            assert metric(metrics, sample) - metric(before, sample) == 1
        useful_total = 'churnwatch_alerts_feedback_total{signal_type="payment_issue",verdict="useful"}'
        assert metric(metrics, useful_total) - metric(before, useful_total) == 1


async def test_escalation_after_the_timeout(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    async with running(web_api_settings(infra, slack, smtp), CONFIG, clock) as service:
        await service.publish(
            group_event("acme", ACME),
            group_event("initech", INITECH),
            signal("acme", "entered_red", "e1", summary="turned red"),
            signal("initech", "ticket_spike", "t1", severity=Severity.MEDIUM, summary="tickets doubled"),
        )
        [red] = await service.wait("acme", lambda a: len(a) == 1 and sent(a[0]))
        assert red["escalate_at"] is not None
        [tickets] = await service.wait("initech", lambda a: len(a) == 1 and sent(a[0]))
        assert tickets["escalate_at"] is None  # medium: below the escalation's threshold
        clock.advance(hours=3, minutes=59)
        assert (await service.tick())["escalated"] == 0
        clock.advance(minutes=2)
        assert (await service.tick())["escalated"] == 1
        await wait_until(lambda: len(slack.in_channel("U0DANA")) == 1, what="Dana's DM")
        dm = slack.in_channel("U0DANA")[0]
        assert dm.text.startswith("Escalated: Acme Corp turned red")
        assert "Not acknowledged 4 h after Jane was told" in str(dm.blocks)
        mails = await smtp.wait_for_accepted(3)
        assert [m.subject for m in mails if m.rcpt_tos == ["dana@example.com"]] == [
            "[Churnwatch] Escalated: Acme Corp turned red"
        ]
        clock.advance(hours=10)
        assert (await service.tick())["escalated"] == 0  # once


async def test_quiet_hours_defer_and_an_acknowledgement_cancels_the_rest(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver
) -> None:
    night = T0.replace(hour=22)  # 23:00 in Berlin
    clock = ManualClock(night)
    config = RoutingConfig.model_validate(
        {
            **CONFIG.model_dump(),
            "defaults": {"timezone": "Europe/Berlin", "quiet_hours": {"start": "20:00", "end": "08:00"}},
        }
    )
    async with running(web_api_settings(infra, slack, smtp), config, clock) as service:
        await service.publish(
            group_event("acme", ACME),
            signal("acme", "churn_talk", "x1", at=night, summary="mentioned cancelling"),
        )
        [alert] = await service.wait("acme", lambda a: len(a) == 1 and len(a[0]["deliveries"]) == 2)
        due = {d["next_attempt_at"] for d in alert["deliveries"]}
        assert due == {"2026-11-21T07:00:00Z"}  # 08:00 in Berlin
        clock.set(T0.replace(day=21, hour=7, minute=1))
        service.runtime.dispatcher.wake()
        await slack.wait_for_messages(1)
        await smtp.wait_for_accepted(1)

        # Another account's alert at night, acknowledged through the API before morning: never
        # sent. (Another signal about acme would join its open alert, with no message.)
        clock.set(T0.replace(day=21, hour=22))
        await service.publish(
            group_event("initech", INITECH),
            signal("initech", "competitor_mentioned", "m1", at=clock.now(), summary="named Globex"),
        )
        [alert] = await service.wait("initech", lambda a: len(a) == 1 and len(a[0]["deliveries"]) == 2)
        ack = await service.client.post(
            f"/v1/alerts/{alert['id']}/acknowledge", headers=AUTH, json={"actor": "bill@example.com"}
        )
        assert ack.status_code == 200
        clock.set(T0.replace(day=22, hour=7, minute=1))
        service.runtime.dispatcher.wake()
        [alert] = await service.wait(
            "initech", lambda a: all(d["status"] == "cancelled" for d in a[0]["deliveries"])
        )
        assert len(slack.messages) == 1


async def test_api_auth_and_preference_validation(
    infra: Infra, slack: SlackReceiver, smtp: SmtpReceiver, clock: ManualClock
) -> None:
    async with running(web_api_settings(infra, slack, smtp), CONFIG, clock) as service:
        client = service.client
        assert (await client.get("/v1/accounts/acme/alerts")).json()["code"] == "missing_token"
        wrong = await client.get("/v1/accounts/acme/alerts", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_token")
        bad = await client.put(
            "/v1/recipients/jane@example.com/preferences",
            headers=AUTH,
            json={"timezone": "Mars/Base", "channels": ["pager"]},
        )
        assert bad.status_code == 400
        assert {e["field"] for e in bad.json()["errors"]} == {"timezone", "channels[0]"}
        assert (
            await client.put("/v1/recipients/not-an-email/preferences", headers=AUTH, json={})
        ).status_code == 400
        missing = await client.post("/v1/alerts/999/acknowledge", headers=AUTH, json={"actor": "x"})
        assert (missing.status_code, missing.json()["code"]) == (404, "alert_not_found")
    # Without the alerts token, reads need an API token (issue 14) and writes an admin one.
    token_settings = web_api_settings(infra, slack, smtp, alerts_api_token=None)
    async with running(token_settings, CONFIG, clock) as service:
        anonymous = await service.client.get("/v1/accounts/acme/alerts")
        assert (anonymous.status_code, anonymous.json()["code"]) == (401, "missing_token")
        assert (await service.client.get("/v1/accounts/acme/alerts", headers=API_AUTH)).status_code == 200
        refused = await service.client.post("/v1/alerts/1/acknowledge", json={"actor": "x"})
        assert (refused.status_code, refused.json()["code"]) == (403, "api_token_not_configured")
        admin = await service.client.post("/v1/alerts/999/acknowledge", headers=API_AUTH, json={"actor": "x"})
        assert (admin.status_code, admin.json()["code"]) == (404, "alert_not_found")


def test_the_example_routing_file_in_the_docs_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_CS_ENTERPRISE", "https://hooks.slack.com/services/T/B/x")
    docs = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text()
    block = re.search(r"```yaml\n# alerts routing\n(.*?)```", docs, re.S)
    assert block is not None, "docs/alerts.md shows an example routing file"
    config = parse_routing(__import__("yaml").safe_load(block.group(1)))
    assert [s.name for s in config.segments] == ["enterprise", "low_touch", "mid_market"]
    assert config.slack.webhooks == {"#cs-enterprise": "https://hooks.slack.com/services/T/B/x"}
