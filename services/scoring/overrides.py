"""Manual overrides by a CSM: what the API publishes, and how scoring reads it back. Pure.

An override travels as an event on scoring's overrides topic (keyed by account, so it lands
on the partition that owns the account) and is applied on event time like everything else:
a replay reproduces it and it lapses when the account's event time passes its expiry. The
computed score goes on underneath and is always shown beside it.
"""

from __future__ import annotations

from typing import Any

from shared.events import Envelope, HealthOverridePayload


def override_entry_data(event: Envelope) -> list[Any]:
    """[action, override id, kind, value, reason, author, set at, expires at] for the timeline."""
    payload = event.payload_as(HealthOverridePayload)
    value: Any = payload.score if payload.kind == "score" else (payload.band.value if payload.band else None)
    return [
        payload.action,
        payload.override_id,
        payload.kind,
        value,
        payload.reason,
        payload.author,
        event.occurred_at.timestamp(),
        payload.expires_at.timestamp() if payload.expires_at is not None else None,
    ]


def override_topic(prefix: str) -> str:
    return f"{prefix}scoring-overrides"
