# ruff: noqa: RUF001  (the typographic minus sign is part of the rendered text)
"""The Slack app's messages from real engine output, exactly: Block Kit text for the main signal
types, the interactive controls as the alert's state changes, 'who did what and when', and how
Slack's interaction and command forms are read. Pure: no I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import orjson
import pytest

from services.alerts.render.messages import AlertView, activity_line, render_slack
from services.alerts.render.playbook import BUILT_IN
from services.alerts.slack.payloads import (
    ActionKind,
    ButtonPress,
    SlackRequestError,
    button_presses,
    slash_command,
)
from shared.events import RiskSignalPayload
from tests.scoring.events import T0, daily_usage, feed, nps, run, usage

ACCOUNT_URL = "https://crm.example.com/accounts/acme"
AT = datetime(2026, 11, 20, 10, 1, tzinfo=UTC)


def engine_signal(signal_type: str) -> RiskSignalPayload:
    if signal_type == "detractor_response":
        engine = run([usage("u", "acme", T0), nps("n1", "acme", "r1", 10, T0)], account_id="acme")
        engine.take_outputs()
        later = T0 + timedelta(hours=1)
        feed(engine, [nps("n2", "acme", "r2", 1, later, user_id="u2", comment="Moving to a cheaper tool")])
    elif signal_type == "entered_red":
        answers = [nps("n1", "acme", "r1", 0, T0, user_id="u1"), nps("n2", "acme", "r2", 1, T0, user_id="u2")]
        engine = run(answers, account_id="acme")
    else:
        busy, quiet = daily_usage("acme", 42, 36), daily_usage("acme", 10, 3, start=T0 + timedelta(days=42),
                                                                prefix="v")
        engine = run(busy + quiet, account_id="acme")
    return next(s for _, s in engine.take_outputs().signals if s.signal_type == signal_type)


def view(signal: RiskSignalPayload, **changes: Any) -> AlertView:
    values: dict[str, Any] = {
        "alert_id": 7, "account_id": "acme", "account_name": "Acme Corp", "signal": signal,
        "occurred_at": T0, "account_url": ACCOUNT_URL, "next_step": BUILT_IN[signal.signal_type],
        "mention": "U0JANE", "interactive": True, "mrr": 1250.0, **changes,
    }
    return AlertView(**values)


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": mrkdwn(text)}


def head(title: str, what: str, fields: list[str]) -> list[dict[str, Any]]:
    return [
        {"type": "header", "text": {"type": "plain_text", "text": title, "emoji": True}},
        {"type": "section", "text": mrkdwn(what), "fields": [mrkdwn(f) for f in fields]},
    ]


CONTEXT = {"type": "context", "elements": [mrkdwn("Occurred 2026-10-01 09:00 UTC"), mrkdwn("Account `acme`")]}
CASES = {
    "detractor_response": (
        '<@U0JANE> Acme Corp: NPS detractor (score 1): "Moving to a cheaper tool" — '
        "Health 57 (−43 from 100) · yellow, was green",
        [
            *head(
                'Acme Corp: NPS detractor (score 1): "Moving to a cheaper tool"',
                f"<@U0JANE> *<{ACCOUNT_URL}|Acme Corp>* — "
                'NPS detractor (score 1): "Moving to a cheaper tool"\n'
                "Health 57 (−43 from 100) · yellow, was green",
                ["*MRR*\n1,250",
                 "*Severity*\nhigh", "*Signal*\ndetractor response", "*Kind*\nrisk", "*Health score*\n57",
                 "*Band*\nyellow", "*Segment*\nstandard"],
            ),
            section("*Why*\n• latest NPS response 1 (detractor), down from 10\n"
                    "• last product activity today"),
            section("*Evidence*\n*Survey:* NPS\n*Answer:* 1\n*Comment:* Moving to a cheaper tool\n"
                    "*Respondent:* u2\n"
                    "*Submitted at:* 2026-10-01 10:00 UTC\n*Also raised:* band dropped, score drop"),
            section("*Suggested next step*\nReply to the respondent within 48 hours: thank them, address the "
                    "comment, and offer a call."),
            CONTEXT,
        ],
    ),
    "entered_red": (
        "<@U0JANE> Acme Corp turned red: health 0; latest NPS response 0 (detractor) — Health 0 · red",
        [
            *head(
                "Acme Corp turned red: health 0; latest NPS response 0 (detractor)",
                f"<@U0JANE> *<{ACCOUNT_URL}|Acme Corp>* — turned red: health 0; latest NPS response 0 "
                "(detractor)\nHealth 0 · red",
                ["*MRR*\n1,250",
                 "*Severity*\nhigh", "*Signal*\nentered red", "*Kind*\nrisk", "*Health score*\n0",
                 "*Band*\nred", "*Segment*\nstandard"],
            ),
            section("*Why*\n• latest NPS response 0 (detractor)"),
            section("*Suggested next step*\nCall your champion this week: confirm what changed, "
                    "agree a recovery plan and a date to review it."),
            CONTEXT,
        ],
    ),
    "usage_decline": (
        "<@U0JANE> Acme Corp product usage down 41% vs the account's 4-week baseline (110 events a week "
        "against 186) — Health 72 (−2 from 73) · green",
        [
            *head(
                "Acme Corp product usage down 41% vs the account's 4-week baseline "
                "(110 events a week against 186)",
                f"<@U0JANE> *<{ACCOUNT_URL}|Acme Corp>* — product usage down 41% vs the account's 4-week "
                "baseline (110 events a week against 186)\nHealth 72 (−2 from 73) · green",
                ["*MRR*\n1,250",
                 "*Severity*\nmedium", "*Signal*\nusage decline", "*Kind*\nrisk", "*Health score*\n72",
                 "*Band*\ngreen", "*Segment*\nstandard"],
            ),
            section("*Why*\n• product usage down 41% vs the account's 4-week baseline "
                    "(110 events a week against 186)\n"
                    "• 1 distinct feature used in the last 30 days (5 expected)\n"
                    "• last product activity today"),
            section("*Evidence*\n*Usage against its usual level:* 59%\n*Events a week:* 110.1\n"
                    "*Usual events a week:* 185.6"),
            section("*Suggested next step*\nFind out which teams stopped using the product and offer a "
                    "re-onboarding session or a workflow review."),
            CONTEXT,
        ],
    ),
}


@pytest.mark.parametrize("signal_type", sorted(CASES))
def test_the_main_signal_types_render_exactly(signal_type: str) -> None:
    text, blocks = CASES[signal_type]
    body = render_slack(view(engine_signal(signal_type)))
    assert body["text"] == text
    assert body["blocks"][:-1] == blocks
    assert body["blocks"][-1]["type"] == "actions"


def button(label: str, action: str, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {"type": "button", "text": {"type": "plain_text", "text": label},
                               "action_id": f"churnwatch-{action}", "value": "7"}
    if style:
        element["style"] = style
    return element


OPEN = {"type": "button", "text": {"type": "plain_text", "text": "Open account"}, "url": ACCOUNT_URL,
        "action_id": "churnwatch-open"}
SNOOZE = {
    "type": "static_select",
    "action_id": "churnwatch-snooze",
    "placeholder": {"type": "plain_text", "text": "Snooze…"},
    "options": [{"text": {"type": "plain_text", "text": label}, "value": f"7:{value}"}
                for label, value in (("1 hour", "1h"), ("4 hours", "4h"), ("1 day", "1d"), ("1 week", "1w"))],
}
RESOLVE = {
    **button("Resolve", "resolve"),
    "confirm": {
        "title": {"type": "plain_text", "text": "Resolve this alert?"},
        "text": {"type": "plain_text", "text": "It closes until a new signal opens another."},
        "confirm": {"type": "plain_text", "text": "Resolve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    },
}


def test_the_controls_follow_the_alert_and_show_who_did_what() -> None:
    signal = engine_signal("entered_red")
    actions = render_slack(view(signal))["blocks"][-1]
    assert actions == {
        "type": "actions",
        "block_id": "churnwatch-alert-7",
        "elements": [OPEN, button("Acknowledge", "acknowledge", "primary"), SNOOZE, RESOLVE,
                     button("Not useful", "not_useful")],
    }
    acked = activity_line({"action": "acknowledge", "actor": "slack:U0ANNA", "details": {}, "at": AT})
    assert acked == "Acknowledged by <@U0ANNA> at 2026-11-20 10:01 UTC"
    blocks = render_slack(view(signal, state="acknowledged", activity=acked))["blocks"]
    assert blocks[-2] == {"type": "context", "elements": [mrkdwn(acked)]}
    assert blocks[-1]["elements"] == [OPEN, SNOOZE, RESOLVE, button("Not useful", "not_useful")]
    resolved = render_slack(view(signal, state="resolved"))["blocks"][-1]
    assert resolved["elements"] == [OPEN]
    # Without the app, the same message carries signed links instead (tests/alerts/test_messages.py).
    assert "links" not in str(render_slack(view(signal, interactive=False))["blocks"][-1])


def test_who_did_what_reads_in_words() -> None:
    snoozed = {"action": "snooze", "actor": "slack:U0ANNA", "at": AT,
               "details": {"until": (AT + timedelta(hours=4)).isoformat(), "reason": "r"}}
    assert activity_line(snoozed) == "Snoozed until 2026-11-20 14:01 UTC by <@U0ANNA> at 2026-11-20 10:01 UTC"
    by_link = {"action": "resolve", "actor": "jane <jane@example.com>", "details": {}, "at": AT}
    assert activity_line(by_link) == "Resolved by jane &lt;jane@example.com&gt; at 2026-11-20 10:01 UTC"
    useful = {"action": "feedback", "actor": "jane@example.com", "details": {"useful": True}, "at": AT}
    assert activity_line(useful) == "Marked useful by jane@example.com at 2026-11-20 10:01 UTC"
    assert activity_line({"action": "escalate", "actor": "system", "details": {}, "at": AT}) is None
    assert activity_line(None) is None


def interaction(*actions: dict[str, Any], **payload: Any) -> bytes:
    body = {"type": "block_actions", "user": {"id": "U0ANNA", "username": "anna"}, "actions": list(actions),
            **payload}
    return urlencode({"payload": orjson.dumps(body).decode()}).encode()


def test_interactions_are_read_into_button_presses() -> None:
    presses = button_presses(interaction(
        {"action_id": "churnwatch-acknowledge", "value": "7"},
        {"action_id": "churnwatch-snooze", "selected_option": {"value": "7:1d"}},
        {"action_id": "churnwatch-open"},
        {"action_id": "someone-elses-button", "value": "x"},
    ))
    assert presses == [
        ButtonPress(ActionKind.ACKNOWLEDGE, 7, "U0ANNA", "anna"),
        ButtonPress(ActionKind.SNOOZE, 7, "U0ANNA", "anna", timedelta(days=1)),
        ButtonPress(ActionKind.OPEN, None, "U0ANNA", "anna"),
    ]
    assert button_presses(interaction(type="view_submission")) == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "payload: missing (an interaction is a form with a `payload` field)"),
        (urlencode({"payload": "{not json"}).encode(), "payload: not JSON"),
        (interaction({"action_id": "churnwatch-acknowledge"}), "payload.actions[0].value: missing"),
        (interaction({"action_id": "churnwatch-resolve", "value": "seven"}),
         "payload.actions[0].value: not an alert id ('seven')"),
        (interaction({"action_id": "churnwatch-snooze", "selected_option": {"value": "7:1y"}}),
         "payload.actions[0].selected_option.value: unknown duration '1y' (one of 1h, 4h, 1d, 1w)"),
        (interaction({"action_id": "churnwatch-delete", "value": "7"}),
         "payload.actions[0].action_id: unknown ('churnwatch-delete')"),
        (interaction(user={}), "payload.user.id: missing"),
    ],
)
def test_a_malformed_interaction_is_named(body: bytes, message: str) -> None:
    with pytest.raises(SlackRequestError) as caught:
        button_presses(body)
    assert str(caught.value) == message


def test_a_slash_command_is_read() -> None:
    command = slash_command(urlencode({"command": "/churnwatch", "text": "  Acme Corp ", "user_id": "U0JANE",
                                       "channel_id": "C0CS"}).encode())
    assert (command.command, command.text, command.user_id, command.channel_id) == (
        "/churnwatch", "Acme Corp", "U0JANE", "C0CS"
    )
    with pytest.raises(SlackRequestError, match="user_id: missing"):
        slash_command(urlencode({"command": "/churnwatch", "text": "acme"}).encode())
