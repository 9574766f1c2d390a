"""Intercom ticket notifications (`ticket.*` topics) as Churnwatch tickets. Pure.

A notification is `{type: "notification_event", id, topic, created_at, data: {item}}` where
the item is the ticket: `id`, `ticket_state` (a string, or an object with a `category`, by
API version), `ticket_attributes` (`_default_title_`, `_default_description_`), `contacts`,
`company_id`, `tags`, `ticket_parts`, `created_at`/`updated_at` (unix seconds). Intercom's
notification id is the envelope id, so a redelivered notification is one event downstream.
"""

from __future__ import annotations

from typing import Any

from services.ingest.helpdesk.ticket import (
    COMMENT_MAX,
    SUBJECT_MAX,
    HelpdeskTicket,
    TranslationError,
    as_object,
    optional_id,
    optional_object,
    optional_text,
    required_id,
    unix_time,
)
from shared.events import TicketPriority, TicketStatus

SOURCE = "intercom"
TICKET_TOPIC_PREFIX = "ticket."
STATES = {
    "submitted": TicketStatus.NEW,
    "in_progress": TicketStatus.OPEN,
    "waiting_on_customer": TicketStatus.PENDING,
    "on_hold": TicketStatus.HOLD,
    "resolved": TicketStatus.SOLVED,
}


def is_ticket_notification(body: Any) -> bool:
    return isinstance(body, dict) and str(body.get("topic", "")).startswith(TICKET_TOPIC_PREFIX)


def translate(body: Any) -> HelpdeskTicket:
    root = as_object(body, "body")
    if root.get("type") != "notification_event":
        raise TranslationError("type", "must be notification_event")
    topic = root.get("topic")
    if not isinstance(topic, str) or not topic.startswith(TICKET_TOPIC_PREFIX):
        raise TranslationError("topic", f"must be a {TICKET_TOPIC_PREFIX}* topic")
    notification_id = required_id(root.get("id"), "id")
    data = as_object(root.get("data"), "data")
    item = as_object(data.get("item"), "data.item")

    status = _status(item)
    updated_at = unix_time(item.get("updated_at"), "data.item.updated_at")
    occurred_at = updated_at or unix_time(root.get("created_at"), "created_at")
    if occurred_at is None:
        raise TranslationError("data.item.updated_at", "is required (or the notification's created_at)")
    attributes = optional_object(item.get("ticket_attributes"), "data.item.ticket_attributes")
    return HelpdeskTicket(
        event_id=f"intercom:{notification_id}",
        source=SOURCE,
        ticket_id=required_id(item.get("id"), "data.item.id"),
        status=status,
        priority=TicketPriority.HIGH if item.get("priority") == "priority" else TicketPriority.NORMAL,
        occurred_at=occurred_at,
        subject=optional_text(attributes.get("_default_title_"),
                              "data.item.ticket_attributes._default_title_", SUBJECT_MAX),
        tags=_tags(item),
        organization_id=_company(item),
        requester_email=_requester_email(item),
        created_at=unix_time(item.get("created_at"), "data.item.created_at"),
        solved_at=occurred_at if status is TicketStatus.SOLVED else None,
        comment=_comment(topic, item, attributes),
    )


def _status(item: dict[str, Any]) -> TicketStatus:
    state = item.get("ticket_state")
    if isinstance(state, dict):
        state = state.get("category")
    if isinstance(state, str) and state.strip().lower() in STATES:
        return STATES[state.strip().lower()]
    if state is None and item.get("open") is False:
        return TicketStatus.CLOSED
    raise TranslationError("data.item.ticket_state", f"{state!r} is not an Intercom ticket state "
                           "(submitted, in_progress, waiting_on_customer, on_hold, resolved)")


def _tags(item: dict[str, Any]) -> list[str]:
    tags = optional_object(item.get("tags"), "data.item.tags").get("tags") or []
    if not isinstance(tags, list):
        raise TranslationError("data.item.tags.tags", "must be a list")
    return [t["name"] for t in tags if isinstance(t, dict) and isinstance(t.get("name"), str)][:100]


def _company(item: dict[str, Any]) -> str | None:
    if item.get("company_id") is not None:
        return optional_id(item.get("company_id"), "data.item.company_id")
    company = item.get("company")
    return optional_id(company.get("id"), "data.item.company.id") if isinstance(company, dict) else None


def _requester_email(item: dict[str, Any]) -> str | None:
    contacts = optional_object(item.get("contacts"), "data.item.contacts").get("contacts") or []
    if not isinstance(contacts, list):
        raise TranslationError("data.item.contacts.contacts", "must be a list")
    for contact in contacts:
        if isinstance(contact, dict) and isinstance(contact.get("email"), str) and contact["email"]:
            return str(contact["email"])
    return None


def _comment(topic: str, item: dict[str, Any], attributes: dict[str, Any]) -> str | None:
    parts = optional_object(item.get("ticket_parts"), "data.item.ticket_parts").get("ticket_parts")
    if isinstance(parts, list):
        bodies = [p["body"] for p in parts if isinstance(p, dict) and isinstance(p.get("body"), str)
                  and p["body"]]
        if bodies:
            return str(bodies[-1])[:COMMENT_MAX]
    if topic == "ticket.created":
        return optional_text(attributes.get("_default_description_"),
                             "data.item.ticket_attributes._default_description_", COMMENT_MAX)
    return None
