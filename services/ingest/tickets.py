"""The generic ticket event format, for help desks without a dedicated webhook yet.

`POST /v1/tickets` with `{ticket_id, account_id, status, priority, subject, tags,
updated_at, user_id, event_id}`; the envelope's id is the client's `event_id` or, when
absent, derived from the ticket's state at `updated_at`, so a retried post is one event.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import AwareDatetime, BaseModel, Field

from shared.events import Envelope, EventType, TicketPayload, TicketPriority, TicketStatus


class TicketEvent(BaseModel):
    ticket_id: str = Field(min_length=1, max_length=200)
    account_id: str = Field(min_length=1, max_length=200)
    status: TicketStatus
    priority: TicketPriority = TicketPriority.NORMAL
    subject: str | None = Field(default=None, max_length=2_000)
    tags: list[str] = Field(default_factory=list, max_length=100)
    updated_at: AwareDatetime
    user_id: str | None = Field(default=None, max_length=200)
    event_id: str | None = Field(default=None, min_length=1, max_length=200)


def ticket_envelope(ticket: TicketEvent, *, source: str, received_at: datetime) -> Envelope:
    event_id = ticket.event_id or (
        f"ticket:{ticket.ticket_id}:{ticket.updated_at.isoformat()}:{ticket.status}:{ticket.priority}"
    )
    return Envelope(
        event_id=event_id,
        type=EventType.TICKET,
        account_id=ticket.account_id,
        user_id=ticket.user_id,
        occurred_at=ticket.updated_at,
        received_at=received_at,
        source=source,
        payload=TicketPayload(
            ticket_id=ticket.ticket_id,
            status=ticket.status,
            priority=ticket.priority,
            subject=ticket.subject,
            tags=ticket.tags,
        ).model_dump(mode="json"),
    )
