"""Building input envelopes for scoring tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.events import Envelope, EventType

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def envelope(event_type: EventType, event_id: str, account_id: str | None, at: datetime,
             payload: dict[str, Any], user_id: str | None = "user-1") -> Envelope:
    return Envelope(event_id=event_id, type=event_type, account_id=account_id, user_id=user_id,
                    occurred_at=at, received_at=at, source="test", payload=payload)


def usage(event_id: str, account_id: str | None, at: datetime) -> Envelope:
    return envelope(EventType.TRACK, event_id, account_id, at, {"event": "Report Built"})


def group(event_id: str, account_id: str, name: str, at: datetime = T0) -> Envelope:
    return envelope(EventType.GROUP, event_id, account_id, at,
                    {"traits": {"name": name}, "group_id": account_id})


def nps(event_id: str, account_id: str, response_id: str, score: int, at: datetime,
        comment: str | None = None) -> Envelope:
    return envelope(EventType.SURVEY_RESPONSE, event_id, account_id, at, {
        "response_id": response_id, "survey_type": "nps", "score": score, "comment": comment})


def ticket(event_id: str, account_id: str, ticket_id: str, status: str, at: datetime,
           priority: str = "normal") -> Envelope:
    return envelope(EventType.TICKET, event_id, account_id, at, {
        "ticket_id": ticket_id, "status": status, "priority": priority})


def daily_usage(account_id: str, days: int, per_day: int, start: datetime = T0,
                prefix: str = "u") -> list[Envelope]:
    return [usage(f"{prefix}-{account_id}-{d}-{i}", account_id,
                  start + timedelta(days=d, minutes=i))
            for d in range(days) for i in range(per_day)]
