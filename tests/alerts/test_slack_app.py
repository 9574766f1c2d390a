"""The Slack app end to end: the alerts service on the real broker and database, posting with a
bot token through slack_sdk to the local Slack-like Web API, and Slack's signed requests to
/v1/slack/interactions. Time is a manual clock (signatures are checked against it too)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from services.alerts.routing.config import parse_routing
from shared.events import Severity
from shared.settings import Settings
from tests.alerts.clock import ManualClock
from tests.alerts.receivers import SlackMessage, SlackReceiver, wait_until
from tests.alerts.support import API_TOKEN, AUTH, T0, Running, group_event, metric, running, sent, signal
from tests.support.infra import Infra

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CONFIG = parse_routing({"defaults": {"channels": ["slack"], "timezone": "UTC"}})
ACME = {
    "name": "Acme Corp",
    "plan": "business",
    "mrr": 4000,
    "csm_name": "Jane",
    "csm_email": "jane@example.com",
    "csm_slack_channel": "#cs-acme",
    "csm_slack_user": "U0JANE",
}
NOW = T0 + timedelta(minutes=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def settings_for(infra: Infra, slack: SlackReceiver, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "slack_bot_token": slack.token,
        "slack_api_base_url": slack.api_url + "/",
        "slack_signing_secret": SIGNING_SECRET,
        "alerts_api_token": API_TOKEN,
        "alerts_public_url": "http://alerts.test",
        "alerts_tick_seconds": 3600,
        "slack_min_interval_seconds": 0,
        "delivery_poll_seconds": 0.1,
        **overrides,
    }
    return infra.fresh_settings(**values)


@pytest.fixture
async def service(infra: Infra, slack: SlackReceiver, clock: ManualClock) -> AsyncIterator[Running]:
    async with running(settings_for(infra, slack), CONFIG, clock) as service:
        yield service


def signed(body: bytes, timestamp: int, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Slack's v0 signature, computed here from its documented recipe."""
    base = b"v0:" + str(timestamp).encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": str(timestamp),
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def press(message: SlackMessage, action_id: str, option: str | None = None) -> bytes:
    """The block_actions payload Slack posts when U0ANNA clicks `action_id` in `message`."""
    actions = next(b for b in message.blocks if b["type"] == "actions")
    element = next(e for e in actions["elements"] if e["action_id"] == action_id)
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": actions["block_id"],
        "type": element["type"],
        "action_ts": "1764669600.000100",
    }
    if element["type"] == "static_select":
        action["selected_option"] = next(o for o in element["options"] if o["value"].endswith(f":{option}"))
    elif "value" in element:
        action["value"] = element["value"]
    payload = {
        "type": "block_actions",
        "user": {"id": "U0ANNA", "username": "anna", "team_id": "T000"},
        "team": {"id": "T000"},
        "container": {"type": "message", "message_ts": message.ts, "channel_id": message.channel},
        "channel": {"id": message.channel},
        "message": {"ts": message.ts, "text": message.text},
        "response_url": "https://hooks.slack.test/actions/T000/1/abc",
        "actions": [action],
    }
    return urlencode({"payload": orjson.dumps(payload).decode()}).encode()


def action_ids(message: SlackMessage) -> list[str]:
    actions = next(b for b in message.blocks if b["type"] == "actions")
    return [e["action_id"] for e in actions["elements"]]


def context_lines(message: SlackMessage) -> list[str]:
    return [e["text"] for b in message.blocks if b["type"] == "context" for e in b["elements"]]


async def first_message(
    service: Running, slack: SlackReceiver, severity: Severity = Severity.HIGH
) -> tuple[SlackMessage, dict[str, Any]]:
    await service.publish(group_event("acme", ACME), signal("acme", "usage_decline", "w1", severity=severity,
                                                            summary="product usage down 62%"))
    [message] = await slack.wait_for_messages(1)
    [alert] = await service.wait("acme", lambda a: len(sent(a[0])) == 1)
    return message, alert


async def test_one_post_then_edits_then_a_threaded_reply(service: Running, slack: SlackReceiver) -> None:
    message, alert = await first_message(service, slack, Severity.MEDIUM)
    assert message.channel == slack.channel_id("#cs-acme")
    assert [c.method for c in slack.api_log] == ["chat.postMessage"]
    [delivery] = sent(alert)
    # The message's channel and ts are kept: edits and replies find it by them.
    assert (delivery["external_channel"], delivery["external_id"]) == (message.channel, message.ts)
    # Interactive buttons (the app is set up), not signed links.
    assert action_ids(message) == [
        "churnwatch-open", "churnwatch-acknowledge", "churnwatch-snooze", "churnwatch-resolve",
        "churnwatch-not_useful",
    ]

    # A new reason, not worse: the message is edited in place, nothing new is posted.
    await service.publish(signal("acme", "competitor_mentioned", "m1", severity=Severity.MEDIUM,
                                 summary="competitor Globex named in a survey comment"))
    edited = await slack.wait_for_edits(message, 1)
    # Both medium and raised at the same event time: named after the first by name.
    assert edited.text == (
        "<@U0JANE> Acme Corp competitor Globex named in a survey comment (and 1 more reason)"
    )
    reasons = next(b["text"]["text"] for b in edited.blocks if "Reasons, worst first" in str(b))
    assert reasons == (
        "*Reasons, worst first*\n"
        "• Medium · competitor mentioned: competitor Globex named in a survey comment\n"
        "• Medium · usage decline: product usage down 62%"
    )
    assert [c.method for c in slack.api_log] == ["chat.postMessage", "chat.update"]

    # Worse than notified: a reply in the message's thread, and the message edited again.
    await service.publish(signal("acme", "detractor_response", "r1", severity=Severity.HIGH,
                                 summary="NPS detractor (score 2)"))
    await slack.wait_for_messages(2)
    reply = slack.messages[1]
    assert (reply.thread_ts, reply.channel, reply.broadcast) == (message.ts, message.channel, True)
    assert reply.text == "<@U0JANE> Update: Acme Corp: NPS detractor (score 2) (and 2 more reasons)"
    edited = await slack.wait_for_edits(message, 2)
    assert edited.text == "<@U0JANE> Acme Corp: NPS detractor (score 2) (and 2 more reasons)"
    assert len(slack.calls("chat.postMessage")) == 2 and len(slack.messages) == 2


async def test_a_signed_ack_is_recorded_and_the_message_shows_who_and_when(
    service: Running, slack: SlackReceiver, clock: ManualClock
) -> None:
    message, alert = await first_message(service, slack)
    body = press(message, "churnwatch-acknowledge")
    response = await service.client.post(
        "/v1/slack/interactions", content=body, headers=signed(body, int(clock.now().timestamp()))
    )
    assert response.status_code == 200, response.text

    [alert] = await service.wait("acme", lambda a: a[0]["state"] == "acknowledged")
    assert (alert["acknowledged_by"], alert["acknowledged_at"]) == ("slack:U0ANNA", "2026-11-20T10:01:00Z")
    [action] = alert["actions"]
    assert (action["action"], action["actor"], action["via"], action["details"]) == (
        "acknowledge", "slack:U0ANNA", "slack", {"slack_user": "anna"}
    )
    edited = await slack.wait_for_edits(message, 1)
    assert "Acknowledged by <@U0ANNA> at 2026-11-20 10:01 UTC" in context_lines(edited)
    assert action_ids(edited) == [
        "churnwatch-open", "churnwatch-snooze", "churnwatch-resolve", "churnwatch-not_useful",
    ]
    assert len(slack.messages) == 1 and slack.calls("chat.update")[-1].status == 200


async def test_snooze_with_a_duration_not_useful_and_resolve_from_slack(
    service: Running, slack: SlackReceiver, clock: ManualClock
) -> None:
    message, _ = await first_message(service, slack)
    now = int(clock.now().timestamp())

    body = press(message, "churnwatch-snooze", "4h")
    assert (await service.client.post("/v1/slack/interactions", content=body,
                                      headers=signed(body, now))).status_code == 200
    [alert] = await service.wait("acme", lambda a: a[0]["state"] == "snoozed")
    assert (alert["snoozed_until"], alert["snoozed_by"]) == ("2026-11-20T14:01:00Z", "slack:U0ANNA")
    edited = await slack.wait_for_edits(message, 1)
    assert "Snoozed until 2026-11-20 14:01 UTC by <@U0ANNA> at 2026-11-20 10:01 UTC" in context_lines(edited)

    body = press(message, "churnwatch-not_useful")
    assert (await service.client.post("/v1/slack/interactions", content=body,
                                      headers=signed(body, now))).status_code == 200
    [alert] = await service.wait("acme", lambda a: len(a[0]["feedback"]) == 1)
    assert [(f["actor"], f["useful"]) for f in alert["feedback"]] == [("slack:U0ANNA", False)]
    edited = await slack.wait_for_edits(message, 2)
    assert "Marked not useful by <@U0ANNA> at 2026-11-20 10:01 UTC" in context_lines(edited)

    body = press(message, "churnwatch-resolve")
    assert (await service.client.post("/v1/slack/interactions", content=body,
                                      headers=signed(body, now))).status_code == 200
    [alert] = await service.wait("acme", lambda a: a[0]["state"] == "resolved")
    assert (alert["resolved_by"], alert["resolved_reason"]) == ("slack:U0ANNA", "manual")
    edited = await slack.wait_for_edits(message, 3)
    assert "Resolved by <@U0ANNA> at 2026-11-20 10:01 UTC" in context_lines(edited)
    assert action_ids(edited) == ["churnwatch-open"]  # nothing left to do but look

    # The link button: Slack opens the page itself; the click changes nothing here.
    body = press(message, "churnwatch-open")
    assert (await service.client.post("/v1/slack/interactions", content=body,
                                      headers=signed(body, now))).status_code == 200
    [alert] = await service.alerts("acme")
    assert len(alert["actions"]) == 3


async def test_an_ack_through_the_api_shows_on_the_slack_message_too(
    service: Running, slack: SlackReceiver
) -> None:
    message, alert = await first_message(service, slack)
    response = await service.client.post(
        f"/v1/alerts/{alert['id']}/acknowledge", json={"actor": "jane@example.com"}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    edited = await slack.wait_for_edits(message, 1)
    assert "Acknowledged by jane@example.com at 2026-11-20 10:01 UTC" in context_lines(edited)
    assert "churnwatch-acknowledge" not in action_ids(edited)


async def test_a_bad_signature_or_an_old_request_is_refused_and_changes_nothing(
    service: Running, slack: SlackReceiver, clock: ManualClock
) -> None:
    message, _ = await first_message(service, slack)
    body = press(message, "churnwatch-acknowledge")
    now = int(clock.now().timestamp())
    refused = 'churnwatch_alerts_slack_requests_total{{endpoint="interactions",outcome="{}"}}'
    before = await service.metrics()

    wrong = await service.client.post("/v1/slack/interactions", content=body,
                                      headers=signed(body, now, secret="not-the-signing-secret"))
    assert (wrong.status_code, wrong.json()["code"]) == (401, "bad_signature")
    tampered = body.replace(b"U0ANNA", b"U0MALL")
    altered = await service.client.post("/v1/slack/interactions", content=tampered, headers=signed(body, now))
    assert (altered.status_code, altered.json()["code"]) == (401, "bad_signature")
    old = await service.client.post(
        "/v1/slack/interactions", content=body, headers=signed(body, now - 6 * 60)
    )
    assert (old.status_code, old.json()["code"]) == (401, "stale_request")
    assert "over 300 s" in old.json()["message"]
    unsigned = await service.client.post("/v1/slack/interactions", content=body)
    assert unsigned.status_code == 401
    after = await service.metrics()
    for outcome, count in (("bad_signature", 2), ("stale_request", 1), ("unsigned", 1)):
        assert metric(after, refused.format(outcome)) == metric(before, refused.format(outcome)) + count

    # The same request, signed now and correctly, is taken: the refusals were about the signature.
    good = await service.client.post("/v1/slack/interactions", content=body, headers=signed(body, now))
    assert good.status_code == 200
    [alert] = await service.wait("acme", lambda a: a[0]["state"] == "acknowledged")
    assert len(alert["actions"]) == 1


async def test_a_429_is_waited_out_as_retry_after_asks(service: Running, slack: SlackReceiver) -> None:
    slack.answer("rate_limited")  # 429 with Retry-After: 1
    message, alert = await first_message(service, slack)
    [limited, accepted] = slack.calls("chat.postMessage")
    assert (limited.status, accepted.status) == (429, 200)
    assert accepted.at - limited.at >= 1.0
    # slack_sdk's rate-limit handler retried inside the one attempt: one message, one attempt.
    assert len(slack.messages) == 1 and message.delivery_key == f"alert:{alert['id']}:alert:1:slack:#cs-acme"
    assert sent(alert)[0]["attempts"] == 1


@pytest.mark.parametrize("answer", ["channel_not_found", "invalid_auth"])
async def test_a_route_that_cannot_work_fails_once_and_is_counted(
    infra: Infra, slack: SlackReceiver, clock: ManualClock, answer: str
) -> None:
    token = slack.token if answer == "channel_not_found" else "xoxb-revoked"  # a real invalid_auth
    async with running(settings_for(infra, slack, slack_bot_token=token), CONFIG, clock) as service:
        failed = f'churnwatch_alerts_deliveries_total{{channel="slack",outcome="failed",reason="{answer}"}}'
        before = metric(await service.metrics(), failed)
        if answer == "channel_not_found":
            slack.answer("channel_not_found")
        await service.publish(group_event("acme", ACME), signal("acme", "usage_decline", "w1"))
        [alert] = await service.wait(
            "acme", lambda a: bool(a and a[0]["deliveries"]) and a[0]["deliveries"][0]["status"] == "failed"
        )
        [delivery] = alert["deliveries"]
        assert delivery["attempts"] == 1 and answer in delivery["last_response"]
        assert metric(await service.metrics(), failed) == before + 1
        # Not retried: no second request comes, however long the dispatcher keeps polling.
        clock.advance(hours=1)
        service.runtime.dispatcher.wake()
        assert (await service.runtime.dispatcher.run_once()) == 0
        assert len(slack.calls("chat.postMessage")) == 1 and slack.messages == []


async def test_an_edit_of_a_deleted_message_gives_up(service: Running, slack: SlackReceiver) -> None:
    message, _ = await first_message(service, slack)
    slack.delete(message)
    await service.publish(signal("acme", "competitor_mentioned", "m1", severity=Severity.MEDIUM))
    [alert] = await service.wait(
        "acme", lambda a: any(d["purpose"] == "edit" and d["status"] == "failed" for d in a[0]["deliveries"])
    )
    [edit] = [d for d in alert["deliveries"] if d["purpose"] == "edit"]
    assert edit["attempts"] == 1 and "message_not_found" in edit["last_response"]
    assert slack.messages == []  # nothing reposted in its place
    await wait_until(lambda: len(slack.calls("chat.update")) == 1, what="the one chat.update")
    assert slack.calls("chat.update")[0].error == "message_not_found"


async def test_when_the_signals_clear_the_message_says_so(
    service: Running, slack: SlackReceiver, clock: ManualClock
) -> None:
    message, _ = await first_message(service, slack)
    await service.publish(signal("acme", "usage_decline", "w1-cleared", status="cleared"))
    await service.wait("acme", lambda a: a[0]["clearing_since"] is not None)
    await slack.wait_for_edits(message, 1)  # the clear signal edits it too (still open, confirming)

    clock.advance(minutes=CONFIG.lifecycle.clear_after_minutes + 1)
    assert (await service.tick())["resolved"] == 1
    resolved = await slack.wait_for_edits(message, 2)
    assert f"Resolved at {clock.now():%Y-%m-%d %H:%M} UTC: every reason cleared" in context_lines(resolved)
    assert action_ids(resolved) == ["churnwatch-open"]
    [alert] = await service.wait("acme", lambda a: len(sent(a[0], "edit")) == 2)
    assert [d["status"] for d in alert["deliveries"] if d["purpose"] == "edit"] == ["sent", "sent"]
