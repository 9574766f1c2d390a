"""Building input envelopes, and running them through an account engine, for scoring tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.scoring.config import Scorecard, load_scorecard
from services.scoring.engine import AccountEngine, Cause
from services.scoring.model import Competitors, to_entry
from shared.events import Envelope, EventType

T0 = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
DEFAULT_CARD = load_scorecard(None)


def envelope(
    event_type: EventType,
    event_id: str,
    account_id: str | None,
    at: datetime,
    payload: dict[str, Any],
    user_id: str | None = "user-1",
) -> Envelope:
    return Envelope(
        event_id=event_id,
        type=event_type,
        account_id=account_id,
        user_id=user_id,
        occurred_at=at,
        received_at=at,
        source="test",
        payload=payload,
    )


def usage(
    event_id: str,
    account_id: str | None,
    at: datetime,
    user_id: str | None = "user-1",
    name: str = "Report Built",
) -> Envelope:
    return envelope(EventType.TRACK, event_id, account_id, at, {"event": name}, user_id=user_id)


def group(event_id: str, account_id: str, name: str, at: datetime = T0, **traits: Any) -> Envelope:
    return envelope(
        EventType.GROUP,
        event_id,
        account_id,
        at,
        {"traits": {"name": name, **traits}, "group_id": account_id},
    )


def traits(event_id: str, account_id: str, at: datetime, **values: Any) -> Envelope:
    return envelope(EventType.GROUP, event_id, account_id, at, {"traits": values, "group_id": account_id})


def nps(
    event_id: str,
    account_id: str,
    response_id: str,
    score: int,
    at: datetime,
    comment: str | None = None,
    user_id: str | None = "user-1",
) -> Envelope:
    return survey(event_id, account_id, response_id, "nps", score, at, comment, user_id)


def survey(
    event_id: str,
    account_id: str,
    response_id: str,
    survey_type: str,
    score: int,
    at: datetime,
    comment: str | None = None,
    user_id: str | None = "user-1",
) -> Envelope:
    return envelope(
        EventType.SURVEY_RESPONSE,
        event_id,
        account_id,
        at,
        {"response_id": response_id, "survey_type": survey_type, "score": score, "comment": comment},
        user_id=user_id,
    )


def ticket(
    event_id: str,
    account_id: str,
    ticket_id: str,
    status: str,
    at: datetime,
    priority: str = "normal",
    subject: str | None = None,
    tags: list[str] | None = None,
    comment: str | None = None,
) -> Envelope:
    return envelope(
        EventType.TICKET,
        event_id,
        account_id,
        at,
        {
            "ticket_id": ticket_id,
            "status": status,
            "priority": priority,
            "subject": subject,
            "tags": tags or [],
            "comment": comment,
        },
    )


def outcome(event_id: str, account_id: str, name: str, at: datetime, **properties: Any) -> Envelope:
    return envelope(EventType.TRACK, event_id, account_id, at, {"event": name, "properties": properties})


def override(
    event_id: str,
    account_id: str,
    at: datetime,
    *,
    action: str = "set",
    override_id: str = "o1",
    kind: str | None = "band",
    band: str | None = "green",
    score: float | None = None,
    expires_at: datetime | None = None,
    author: str = "jane@csm.example",
    reason: str | None = "exec sponsor confirmed renewal",
) -> Envelope:
    return envelope(
        EventType.HEALTH_OVERRIDE,
        event_id,
        account_id,
        at,
        {
            "action": action,
            "override_id": override_id,
            "kind": kind,
            "band": band,
            "score": score,
            "reason": reason,
            "author": author,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
        user_id=None,
    )


def daily_usage(
    account_id: str, days: int, per_day: int, start: datetime = T0, prefix: str = "u", users: int = 1
) -> list[Envelope]:
    return [
        usage(
            f"{prefix}-{account_id}-{d}-{i}",
            account_id,
            start + timedelta(days=d, minutes=i),
            user_id=f"user-{i % users + 1}",
        )
        for d in range(days)
        for i in range(per_day)
    ]


def engine_for(
    account_id: str = "a", card: Scorecard = DEFAULT_CARD, lateness: float = 600.0
) -> AccountEngine:
    return AccountEngine(account_id, card, lateness)


def feed(engine: AccountEngine, events: list[Envelope]) -> AccountEngine:
    competitors = Competitors(engine.card.competitors)
    for event in events:
        entry = to_entry(event, engine.card, competitors)
        if entry is not None:
            engine.add(entry, Cause(event.event_id, event.type.value, entry.t, event.user_id))
    return engine


def run(
    events: list[Envelope], card: Scorecard = DEFAULT_CARD, account_id: str = "a", lateness: float = 600.0
) -> AccountEngine:
    return feed(engine_for(account_id, card, lateness), events)
