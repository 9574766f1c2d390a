"""The generic ticket format, for help desks without a dedicated webhook.

Accepted signed at `POST /v1/webhooks/tickets` and with a write key at `POST /v1/tickets`.
`account_id` may be left out when `organization_id` or `requester_email` is mapped. The
envelope id is the client's `event_id` or derived from the ticket's state at `updated_at`,
so a retried delivery is one event downstream.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from services.ingest.helpdesk.ticket import HelpdeskTicket
from shared.events import TicketPriority, TicketStatus

SOURCE = "tickets-webhook"


class WebhookTicketEvent(BaseModel):
    ticket_id: str = Field(min_length=1, max_length=200)
    account_id: str | None = Field(default=None, min_length=1, max_length=200)
    status: TicketStatus
    priority: TicketPriority = TicketPriority.NORMAL
    subject: str | None = Field(default=None, max_length=2_000)
    tags: list[str] = Field(default_factory=list, max_length=100)
    updated_at: AwareDatetime
    user_id: str | None = Field(default=None, max_length=200)
    event_id: str | None = Field(default=None, min_length=1, max_length=200)
    organization_id: str | None = Field(default=None, min_length=1, max_length=200)
    requester_email: str | None = Field(default=None, max_length=320)
    created_at: AwareDatetime | None = None
    solved_at: AwareDatetime | None = None
    comment: str | None = Field(default=None, max_length=10_000)


def translate(event: WebhookTicketEvent, source: str = SOURCE) -> HelpdeskTicket:
    event_id = event.event_id or (
        f"ticket:{event.ticket_id}:{event.updated_at.isoformat()}:{event.status}:{event.priority}"
    )
    return HelpdeskTicket(
        event_id=event_id,
        source=source,
        ticket_id=event.ticket_id,
        status=event.status,
        priority=event.priority,
        occurred_at=event.updated_at,
        subject=event.subject,
        tags=event.tags,
        organization_id=event.organization_id,
        requester_email=event.requester_email,
        created_at=event.created_at,
        solved_at=event.solved_at,
        comment=event.comment,
        account_id=event.account_id,
        user_id=event.user_id,
    )
