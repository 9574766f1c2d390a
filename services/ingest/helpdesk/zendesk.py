"""Zendesk ticket events (`zen:event-type:ticket.*`) as Churnwatch tickets. Pure.

A Zendesk event is `{type, id, time, account_id, subject, detail, event}`: `detail` is the
ticket after the change (id, status, priority, organization_id, requester_id, tags, subject,
description, created_at, updated_at, ...), `event` the change itself (`{current, previous}`
for `ticket.status_changed` / `ticket.priority_changed`, `{comment: {body, ...}}` for
`ticket.comment_added`). The text scoring reads for signals (a competitor named) is the
subject and the comment: the new comment's body, or the description (the first comment) of a
created ticket. Zendesk's event id is the envelope id, so a redelivered event is one event
downstream. Zendesk events name the requester only by id (no email), so Zendesk tickets map
by organization or by an explicit `zendesk_requester:<user id>` mapping. Zendesk tickets carry
no escalation flag: priority (`urgent`) is their severity.
"""

from __future__ import annotations

from typing import Any

from services.ingest.helpdesk.ticket import (
    COMMENT_MAX,
    SUBJECT_MAX,
    HelpdeskTicket,
    TranslationError,
    as_object,
    iso_time,
    optional_id,
    optional_object,
    optional_text,
    required_id,
    string_list,
)
from shared.events import TicketPriority, TicketStatus

SOURCE = "zendesk"
TICKET_EVENT_PREFIX = "zen:event-type:ticket."
STATUSES = {s.value: s for s in TicketStatus} | {"on-hold": TicketStatus.HOLD,
                                                  "on_hold": TicketStatus.HOLD}
# Zendesk uses 0 for "no organization".
NO_ORGANIZATION = {"0"}


def is_ticket_event(body: Any) -> bool:
    return isinstance(body, dict) and str(body.get("type", "")).startswith(TICKET_EVENT_PREFIX)


def translate(body: Any) -> HelpdeskTicket:
    root = as_object(body, "body")
    event_type = root.get("type")
    if not isinstance(event_type, str) or not event_type.startswith(TICKET_EVENT_PREFIX):
        raise TranslationError("type", f"must be a {TICKET_EVENT_PREFIX}* event type")
    event_id = required_id(root.get("id"), "id")
    detail = as_object(root.get("detail"), "detail")
    change = optional_object(root.get("event"), "event")

    status = _status(detail.get("status"), change, event_type)
    priority_value = detail.get("priority")
    if priority_value is None and event_type.endswith(".priority_changed"):
        priority_value = change.get("current")
    updated_at = iso_time(detail.get("updated_at"), "detail.updated_at")
    occurred_at = updated_at or iso_time(root.get("time"), "time")
    if occurred_at is None:
        raise TranslationError("detail.updated_at", "is required (or the event's time)")
    solved = event_type.endswith(".status_changed") and not status.is_open
    organization = optional_id(detail.get("organization_id"), "detail.organization_id")
    return HelpdeskTicket(
        event_id=f"zendesk:{event_id}",
        source=SOURCE,
        ticket_id=required_id(detail.get("id"), "detail.id"),
        status=status,
        priority=_priority(priority_value),
        occurred_at=occurred_at,
        subject=optional_text(detail.get("subject"), "detail.subject", SUBJECT_MAX),
        tags=string_list(detail.get("tags"), "detail.tags"),
        organization_id=None if organization in NO_ORGANIZATION else organization,
        created_at=iso_time(detail.get("created_at"), "detail.created_at"),
        solved_at=occurred_at if solved else None,
        comment=_comment(change) if not event_type.endswith(".created") else optional_text(
            detail.get("description"), "detail.description", COMMENT_MAX),
        zendesk_requester_id=optional_id(detail.get("requester_id"), "detail.requester_id"),
    )


def _status(value: Any, change: dict[str, Any], event_type: str) -> TicketStatus:
    if value is None and event_type.endswith(".status_changed"):
        value = change.get("current")
    if not isinstance(value, str) or value.strip().lower() not in STATUSES:
        raise TranslationError("detail.status", f"{value!r} is not a Zendesk ticket status "
                               "(new, open, pending, hold, solved, closed)")
    return STATUSES[value.strip().lower()]


def _priority(value: Any) -> TicketPriority:
    if value is None or value == "":
        return TicketPriority.NORMAL
    if not isinstance(value, str):
        raise TranslationError("detail.priority", "must be a string")
    try:
        return TicketPriority(value.strip().lower())
    except ValueError as exc:
        raise TranslationError("detail.priority", f"{value!r} is not low, normal, high or urgent") from exc


def _comment(change: dict[str, Any]) -> str | None:
    comment = change.get("comment")
    if not isinstance(comment, dict):
        return None
    return optional_text(comment.get("body"), "event.comment.body", COMMENT_MAX)
