"""What every help-desk webhook is translated into, and how it becomes an envelope. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from shared.events import Envelope, EventType, TicketPayload, TicketPriority, TicketStatus

SUBJECT_MAX = 2_000
COMMENT_MAX = 10_000


class TranslationError(ValueError):
    """A vendor payload that cannot be read as a ticket event; names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class HelpdeskTicket:
    event_id: str
    source: str
    ticket_id: str
    status: TicketStatus
    priority: TicketPriority
    occurred_at: datetime
    subject: str | None = None
    tags: list[str] = field(default_factory=list)
    organization_id: str | None = None
    requester_email: str | None = None
    created_at: datetime | None = None
    solved_at: datetime | None = None
    comment: str | None = None
    # Zendesk names the requester by user id only; mapped when an explicit mapping says so.
    zendesk_requester_id: str | None = None
    # Only the generic format may name the account itself; vendors are mapped.
    account_id: str | None = None
    user_id: str | None = None


def ticket_envelope(ticket: HelpdeskTicket, *, account_id: str | None,
                    received_at: datetime) -> Envelope:
    return Envelope(
        event_id=ticket.event_id,
        type=EventType.TICKET,
        account_id=account_id,
        user_id=ticket.user_id,
        occurred_at=ticket.occurred_at,
        received_at=received_at,
        source=ticket.source,
        payload=TicketPayload(
            ticket_id=ticket.ticket_id,
            status=ticket.status,
            priority=ticket.priority,
            subject=ticket.subject,
            tags=ticket.tags,
            organization_id=ticket.organization_id,
            requester_email=ticket.requester_email,
            created_at=ticket.created_at,
            solved_at=ticket.solved_at,
            comment=ticket.comment,
            updated_at=ticket.occurred_at,
            requester_id=ticket.zendesk_requester_id,
        ).model_dump(mode="json"),
    )


# --- helpers for reading loosely typed vendor JSON ---------------------------------------


def as_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TranslationError(path, "must be a JSON object")
    return value


def optional_object(value: Any, path: str) -> dict[str, Any]:
    return {} if value is None else as_object(value, path)


def required_id(value: Any, path: str) -> str:
    """Vendors send ids as strings or numbers; both become strings."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise TranslationError(path, "is required (a non-empty string or number)")
    text = str(value).strip()
    if len(text) > 200:
        raise TranslationError(path, "is longer than 200 characters")
    return text


def optional_id(value: Any, path: str) -> str | None:
    return None if value is None or value == "" else required_id(value, path)


def optional_text(value: Any, path: str, limit: int) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TranslationError(path, "must be a string")
    return value[:limit] or None


def string_list(value: Any, path: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TranslationError(path, "must be a list of strings")
    return value[:100]


def iso_time(value: Any, path: str) -> datetime | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise TranslationError(path, "must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TranslationError(path, f"{value!r} is not an ISO 8601 time") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def unix_time(value: Any, path: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TranslationError(path, "must be unix seconds")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise TranslationError(path, f"{value!r} is not a valid unix time") from exc
