"""What Slack sends the app, read into plain values. Pure: no I/O.

Slack posts both interactions and slash commands as `application/x-www-form-urlencoded`:
an interaction is one `payload` field holding JSON (`block_actions` for a click in a
message), a slash command is the command's fields themselves (`command`, `text`, `user_id`...).
The action ids are the ones services/alerts/render/messages.py puts on the buttons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any
from urllib.parse import parse_qs

import orjson

MAX_FORM_BYTES = 100_000
SNOOZE_DURATIONS = {
    "1h": timedelta(hours=1),
    "4h": timedelta(hours=4),
    "1d": timedelta(days=1),
    "1w": timedelta(weeks=1),
}


class SlackRequestError(ValueError):
    """A request Slack would not send: names what is wrong."""


class ActionKind(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    SNOOZE = "snooze"
    RESOLVE = "resolve"
    NOT_USEFUL = "not_useful"
    OPEN = "open"  # a link button: Slack opens the URL itself and tells us; nothing to record


@dataclass(frozen=True)
class ButtonPress:
    kind: ActionKind
    alert_id: int | None
    user_id: str
    user_name: str | None
    snooze_for: timedelta | None = None


@dataclass(frozen=True)
class SlashCommand:
    command: str
    text: str
    user_id: str
    channel_id: str | None


def form_fields(body: bytes) -> dict[str, str]:
    if len(body) > MAX_FORM_BYTES:
        raise SlackRequestError(f"the body is over {MAX_FORM_BYTES} bytes")
    try:
        parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SlackRequestError("the body is not a URL-encoded form") from exc
    return {key: values[0] for key, values in parsed.items()}


def button_presses(body: bytes) -> list[ButtonPress]:
    """The Churnwatch actions in a `block_actions` interaction (other interaction types: none)."""
    raw = form_fields(body).get("payload")
    if raw is None:
        raise SlackRequestError("payload: missing (an interaction is a form with a `payload` field)")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SlackRequestError("payload: not JSON") from exc
    if not isinstance(payload, dict):
        raise SlackRequestError("payload: not a JSON object")
    if payload.get("type") != "block_actions":
        return []
    user = payload.get("user")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str) or not user["id"]:
        raise SlackRequestError("payload.user.id: missing")
    name = user.get("username") or user.get("name")
    presses: list[ButtonPress] = []
    for index, action in enumerate(payload.get("actions") or []):
        if not isinstance(action, dict):
            raise SlackRequestError(f"payload.actions[{index}]: not an object")
        press = _press(action, index, user["id"], str(name) if name else None)
        if press is not None:
            presses.append(press)
    return presses


def _press(action: dict[str, Any], index: int, user_id: str, user_name: str | None) -> ButtonPress | None:
    action_id = str(action.get("action_id") or "")
    if not action_id.startswith("churnwatch-"):
        return None
    name = action_id.removeprefix("churnwatch-")
    if name == "open":
        return ButtonPress(ActionKind.OPEN, None, user_id, user_name)
    value = action.get("value")
    if name == "snooze":
        selected = action.get("selected_option")
        value = selected.get("value") if isinstance(selected, dict) else None
    if not isinstance(value, str) or not value:
        raise SlackRequestError(f"payload.actions[{index}].value: missing")
    alert_part, _, duration = value.partition(":")
    if not alert_part.isdigit():
        raise SlackRequestError(f"payload.actions[{index}].value: not an alert id ({value[:40]!r})")
    try:
        kind = ActionKind(name)
    except ValueError as exc:
        raise SlackRequestError(f"payload.actions[{index}].action_id: unknown ({action_id[:60]!r})") from exc
    snooze_for = None
    if kind is ActionKind.SNOOZE:
        snooze_for = SNOOZE_DURATIONS.get(duration)
        if snooze_for is None:
            raise SlackRequestError(
                f"payload.actions[{index}].selected_option.value: unknown duration {duration[:10]!r} "
                f"(one of {', '.join(SNOOZE_DURATIONS)})"
            )
    return ButtonPress(kind, int(alert_part), user_id, user_name, snooze_for)


def slash_command(body: bytes) -> SlashCommand:
    fields = form_fields(body)
    for name in ("command", "user_id"):
        if not fields.get(name):
            raise SlackRequestError(f"{name}: missing")
    return SlashCommand(
        command=fields["command"],
        text=fields.get("text", "").strip(),
        user_id=fields["user_id"],
        channel_id=fields.get("channel_id") or None,
    )
