"""Realistic Zendesk and Intercom payloads translated into ticket events."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from services.ingest.helpdesk import generic, intercom, zendesk
from services.ingest.helpdesk.ticket import TranslationError, ticket_envelope
from shared.events import EventType, TicketPayload, TicketPriority, TicketStatus

ZENDESK_CREATED: dict[str, Any] = {
    "type": "zen:event-type:ticket.created",
    "account_id": 88888888,
    "id": "01HV7S3Z4Y9Q8R2XKJ5N6M0ABC",
    "time": "2026-11-20T10:00:05Z",
    "zendesk_event_version": "2022-11-06",
    "subject": "zen:ticket:35436",
    "detail": {
        "actor_id": "900001",
        "assignee_id": None,
        "brand_id": "360001",
        "created_at": "2026-11-20T10:00:00Z",
        "description": "Exports have been failing since Monday",
        "id": "35436",
        "is_public": True,
        "organization_id": "360012345",
        "priority": "HIGH",
        "requester_id": "900002",
        "status": "NEW",
        "subject": "CSV export broken",
        "tags": ["export", "bug"],
        "type": "INCIDENT",
        "updated_at": "2026-11-20T10:00:00Z",
        "via": {"channel": "web_service"},
    },
    "event": {"meta": {"sequence": {"id": "C205", "position": 1, "total": 1}}},
}


def zendesk_event(event_type: str, **detail: Any) -> dict[str, Any]:
    body = copy.deepcopy(ZENDESK_CREATED)
    body["type"] = f"zen:event-type:{event_type}"
    body["detail"].update(detail)
    return body


def test_zendesk_ticket_created() -> None:
    ticket = zendesk.translate(ZENDESK_CREATED)
    assert ticket.event_id == "zendesk:01HV7S3Z4Y9Q8R2XKJ5N6M0ABC"
    assert ticket.source == "zendesk"
    assert (ticket.ticket_id, ticket.status, ticket.priority) == ("35436", TicketStatus.NEW,
                                                                  TicketPriority.HIGH)
    assert ticket.subject == "CSV export broken"
    assert ticket.tags == ["export", "bug"]
    assert ticket.organization_id == "360012345"
    assert ticket.requester_email is None  # Zendesk events name the requester by id only
    assert ticket.zendesk_requester_id == "900002"
    assert ticket.created_at == ticket.occurred_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert ticket.solved_at is None
    # The description is the ticket's first comment: its text is what scoring reads for signals.
    assert ticket.comment == "Exports have been failing since Monday"

    envelope = ticket_envelope(ticket, account_id="acct-acme", received_at=datetime.now(UTC))
    assert envelope.type is EventType.TICKET
    payload = envelope.payload_as(TicketPayload)
    assert payload.organization_id == "360012345"
    assert payload.priority is TicketPriority.HIGH
    # Everything scoring needs travels in the payload.
    assert (payload.ticket_id, payload.status, payload.subject, payload.tags) == (
        "35436", TicketStatus.NEW, "CSV export broken", ["export", "bug"])
    assert payload.created_at == payload.updated_at == datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    assert payload.comment == "Exports have been failing since Monday"
    assert payload.requester_id == "900002"


def test_zendesk_priority_changed() -> None:
    body = zendesk_event("ticket.priority_changed", priority="URGENT", updated_at="2026-11-20T11:00:00Z",
                         status="OPEN")
    body["event"] = {"current": "URGENT", "previous": "HIGH"}
    ticket = zendesk.translate(body)
    assert (ticket.priority, ticket.status) == (TicketPriority.URGENT, TicketStatus.OPEN)
    assert ticket.occurred_at == datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
    assert ticket.comment is None  # not a comment event: the description is not repeated
    # A detail without the priority still has it in the change itself.
    del body["detail"]["priority"]
    assert zendesk.translate(body).priority is TicketPriority.URGENT


def test_zendesk_status_change_to_solved_and_comment() -> None:
    solved = zendesk_event("ticket.status_changed", status="SOLVED", updated_at="2026-11-21T09:00:00Z")
    solved["event"] = {"current": "SOLVED", "previous": "OPEN"}
    ticket = zendesk.translate(solved)
    assert ticket.status is TicketStatus.SOLVED
    assert ticket.solved_at == datetime(2026, 11, 21, 9, 0, tzinfo=UTC)

    commented = zendesk_event("ticket.comment_added", status="OPEN", priority=None, organization_id="0")
    commented["event"] = {"comment": {"id": "4001", "body": "Still broken after the update",
                                      "is_public": True, "author": {"id": "900002", "is_staff": False}}}
    ticket = zendesk.translate(commented)
    assert ticket.comment == "Still broken after the update"
    assert ticket.priority is TicketPriority.NORMAL
    assert ticket.organization_id is None  # Zendesk's "0" means no organization
    assert ticket.solved_at is None


@pytest.mark.parametrize(("change", "field"), [
    ({"status": "escalated"}, "detail.status"),
    ({"priority": "critical"}, "detail.priority"),
    ({"id": None}, "detail.id"),
    ({"updated_at": "last tuesday"}, "detail.updated_at"),
    ({"tags": "export"}, "detail.tags"),
])
def test_zendesk_bad_fields_are_named(change: dict[str, Any], field: str) -> None:
    with pytest.raises(TranslationError) as info:
        zendesk.translate(zendesk_event("ticket.created", **change))
    assert info.value.field == field


def test_zendesk_only_ticket_events() -> None:
    assert zendesk.is_ticket_event(ZENDESK_CREATED)
    assert not zendesk.is_ticket_event({"type": "zen:event-type:user.active_changed"})
    with pytest.raises(TranslationError) as info:
        zendesk.translate({**ZENDESK_CREATED, "id": ""})
    assert info.value.field == "id"


INTERCOM_CREATED: dict[str, Any] = {
    "type": "notification_event",
    "app_id": "abc123",
    "id": "notif_4e3504a3-ba3f-46dc-ab48-8e4d5bdfdf4e",
    "topic": "ticket.created",
    "created_at": 1763632805,
    "delivery_attempts": 1,
    "data": {
        "type": "notification_event_data",
        "item": {
            "type": "ticket",
            "id": "98",
            "ticket_id": "24",
            "category": "Customer",
            "ticket_attributes": {"_default_title_": "Billing page 500s",
                                  "_default_description_": "Cannot open invoices"},
            "ticket_state": {"type": "ticket_state", "id": "7", "category": "submitted",
                             "internal_label": "Submitted"},
            "contacts": {"type": "contact.list", "contacts": [
                {"type": "contact", "id": "6657", "external_id": "u-77", "email": "pat@Globex.io"}]},
            "company_id": "cmp-55",
            "tags": {"type": "tag.list", "tags": [{"type": "tag", "id": "1", "name": "billing"}]},
            "created_at": 1763632800,
            "updated_at": 1763632800,
            "open": True,
        },
    },
}


def test_intercom_ticket_created() -> None:
    ticket = intercom.translate(INTERCOM_CREATED)
    assert ticket.event_id == "intercom:notif_4e3504a3-ba3f-46dc-ab48-8e4d5bdfdf4e"
    assert (ticket.ticket_id, ticket.status, ticket.priority) == ("98", TicketStatus.NEW,
                                                                  TicketPriority.NORMAL)
    assert ticket.subject == "Billing page 500s"
    assert ticket.comment == "Cannot open invoices"
    assert ticket.tags == ["billing"]
    assert ticket.organization_id == "cmp-55"
    assert ticket.requester_email == "pat@Globex.io"
    assert ticket.occurred_at == datetime.fromtimestamp(1763632800, UTC)


def test_intercom_state_update_resolved_with_reply() -> None:
    body = copy.deepcopy(INTERCOM_CREATED)
    body["topic"] = "ticket.state.updated"
    item = body["data"]["item"]
    item["ticket_state"] = "resolved"  # older API versions send a plain string
    item["updated_at"] = 1763719200
    item["priority"] = "priority"
    item["ticket_parts"] = {"ticket_parts": [{"part_type": "comment", "body": "<p>Fixed now</p>"}]}
    ticket = intercom.translate(body)
    assert ticket.status is TicketStatus.SOLVED
    assert ticket.priority is TicketPriority.HIGH
    assert ticket.solved_at == datetime.fromtimestamp(1763719200, UTC)
    assert ticket.comment == "<p>Fixed now</p>"


def test_intercom_bad_fields_are_named() -> None:
    body = copy.deepcopy(INTERCOM_CREATED)
    body["data"]["item"]["ticket_state"] = {"category": "exploded"}
    with pytest.raises(TranslationError) as info:
        intercom.translate(body)
    assert info.value.field == "data.item.ticket_state"
    with pytest.raises(TranslationError) as info:
        intercom.translate({**INTERCOM_CREATED, "data": {}})
    assert info.value.field == "data.item"
    assert not intercom.is_ticket_notification({"type": "notification_event", "topic": "ping"})


def test_generic_event_id_is_client_or_derived() -> None:
    event = generic.WebhookTicketEvent.model_validate(
        {"ticket_id": "t-1", "status": "open", "updated_at": "2026-11-20T10:00:00Z",
         "organization_id": "org-9", "comment": "hi"})
    ticket = generic.translate(event)
    assert ticket.event_id == "ticket:t-1:2026-11-20T10:00:00+00:00:open:normal"
    assert ticket.account_id is None and ticket.organization_id == "org-9"
    with_id = generic.translate(event.model_copy(update={"event_id": "fd-1"}))
    assert with_id.event_id == "fd-1"
