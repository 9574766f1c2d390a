"""Help-desk webhook routes: verify the vendor's signature, translate, map, publish.

A webhook whose secret is not configured answers 404 (`webhook_not_configured`): the
endpoint is off, as the admin API is without its token. Signature problems answer 401
naming the header and what was wrong; an unreadable payload 400 naming the field. A signed
delivery that is not a ticket event (an Intercom ping, another topic) answers 200 and is
ignored, so the vendor does not retry it. Otherwise 200 only after Kafka acked.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.datastructures import Headers

from services.ingest import request_bodies
from services.ingest.api import IngestApi, OutgoingEvent
from services.ingest.helpdesk import generic, intercom, zendesk
from services.ingest.helpdesk.mapping import lookup_keys, parse_mappings_setting, resolve_account
from services.ingest.helpdesk.metrics import IGNORED_WEBHOOKS, UNMAPPED_TICKETS
from services.ingest.helpdesk.signatures import verify_generic, verify_intercom, verify_zendesk
from services.ingest.helpdesk.store import load_mappings, upsert_mappings
from services.ingest.helpdesk.ticket import HelpdeskTicket, TranslationError, ticket_envelope
from services.ingest.metrics import EVENTS_ACCEPTED, counting_rejections
from services.ingest.outage import database_outage_as_503
from shared.door import may_hold_nul
from shared.events import utcnow
from shared.http import (
    ApiError,
    invalid_request,
    parse_json,
    refuse_nul,
    refuse_times_outside,
    validate_body,
)
from shared.settings import Settings, event_time_window
from shared.webhook_signatures import SignatureError

SUCCESS: dict[str, Any] = {"success": True}


class HelpdeskWebhooks:
    def __init__(self, api: IngestApi, engine: AsyncEngine) -> None:
        self.api = api
        self.engine = engine
        self.settings = api.settings
        self.window = event_time_window(self.settings)
        # Parsed now so a malformed setting stops the service before it serves anything.
        self.configured_mappings = parse_mappings_setting(self.settings.ticket_account_mappings)

    async def seed_mappings(self) -> None:
        await upsert_mappings(self.engine, self.configured_mappings)

    def secret(self, value: SecretStr | None, name: str, variable: str) -> str:
        if value is None:
            raise ApiError(404, "webhook_not_configured",
                           f"the {name} webhook is off: set {variable} to its signing secret")
        return value.get_secret_value()

    async def accept(self, ticket: HelpdeskTicket) -> None:
        received_at = utcnow()
        refuse_times_outside(self.window, {"occurred_at": ticket.occurred_at,
                                           "created_at": ticket.created_at,
                                           "solved_at": ticket.solved_at}, received_at)
        account = ticket.account_id
        if account is None:
            keys = lookup_keys(ticket.organization_id, ticket.requester_email,
                               ticket.zendesk_requester_id)
            known = await load_mappings(self.engine, keys)
            account = resolve_account(ticket.organization_id, ticket.requester_email, known,
                                      ticket.zendesk_requester_id).account_id
        envelope = ticket_envelope(ticket, account_id=account, received_at=received_at)
        if await self.api.publish_new([OutgoingEvent.of_envelope(envelope, self.api.topics)]):
            EVENTS_ACCEPTED.labels("ticket", ticket.source).inc()
            if account is None:
                UNMAPPED_TICKETS.labels(ticket.source).inc()


def unauthorized(exc: SignatureError) -> ApiError:
    return ApiError(401, exc.code, exc.message)


def bad_payload(exc: TranslationError) -> ApiError:
    return invalid_request([{"field": exc.field, "message": exc.message}])


@dataclass(frozen=True)
class Vendor:
    """What differs between help desks; everything else about a webhook is the same."""

    path: str
    source: str
    name: str
    secret_variable: str
    secret: Callable[[Settings], SecretStr | None]
    verify: Callable[[str, bytes, Headers, Settings], None]
    is_ticket: Callable[[Any], bool]
    ignored_reason: str
    translate: Callable[[Any], HelpdeskTicket]


def _verify_zendesk(secret: str, body: bytes, headers: Headers, settings: Settings) -> None:
    verify_zendesk(secret, body, headers.get("x-zendesk-webhook-signature"),
                   headers.get("x-zendesk-webhook-signature-timestamp"),
                   now=utcnow(), max_age_seconds=settings.webhook_max_age_seconds)


def _verify_generic(secret: str, body: bytes, headers: Headers, settings: Settings) -> None:
    verify_generic(secret, body, headers.get("x-churnwatch-signature"),
                   headers.get("x-churnwatch-signature-timestamp"),
                   now=utcnow(), max_age_seconds=settings.webhook_max_age_seconds)


def _translate_generic(payload: Any) -> HelpdeskTicket:
    return generic.translate(validate_body(generic.WebhookTicketEvent, payload))


VENDORS = (
    Vendor("/webhooks/zendesk", zendesk.SOURCE, "Zendesk", "CHURNWATCH_ZENDESK_WEBHOOK_SECRET",
           lambda s: s.zendesk_webhook_secret, _verify_zendesk,
           zendesk.is_ticket_event, "not a zen:event-type:ticket.* event", zendesk.translate),
    Vendor("/webhooks/intercom", intercom.SOURCE, "Intercom", "CHURNWATCH_INTERCOM_WEBHOOK_SECRET",
           lambda s: s.intercom_webhook_secret,
           lambda secret, body, headers, _: verify_intercom(secret, body, headers.get("x-hub-signature")),
           intercom.is_ticket_notification, "not a ticket.* notification", intercom.translate),
    Vendor("/webhooks/tickets", generic.SOURCE, "generic tickets", "CHURNWATCH_TICKETS_WEBHOOK_SECRET",
           lambda s: s.tickets_webhook_secret,
           _verify_generic,
           lambda _: True, "", _translate_generic),
)


def build_helpdesk_router(webhooks: HelpdeskWebhooks) -> APIRouter:
    router = APIRouter(prefix="/v1")
    settings = webhooks.settings

    @router.post("/tickets", openapi_extra=request_bodies.WRITE_KEY_TICKET)
    async def tickets(request: Request) -> dict[str, Any]:
        """The generic format with a write key instead of a signature."""
        with counting_rejections(), database_outage_as_503():
            async with webhooks.api.holding_body(request):
                body = await webhooks.api.read_json(request)
                source = await webhooks.api.authorize(request, body.json)
                refuse_nul(body.json, body.may_hold_nul)
                event = validate_body(generic.WebhookTicketEvent, body.json)
                await webhooks.accept(generic.translate(event, source=source))
        return SUCCESS

    def vendor_route(vendor: Vendor) -> Callable[[Request], Awaitable[dict[str, Any]]]:
        async def receive(request: Request) -> dict[str, Any]:
            with counting_rejections(), database_outage_as_503():
                secret = webhooks.secret(vendor.secret(settings), vendor.name, vendor.secret_variable)
                async with webhooks.api.holding_body(request):
                    body = await webhooks.api.read_raw(request)
                    try:
                        vendor.verify(secret, body, request.headers, settings)
                    except SignatureError as exc:
                        raise unauthorized(exc) from exc
                    payload = parse_json(body)
                    refuse_nul(payload, may_hold_nul(body))
                    if not vendor.is_ticket(payload):
                        IGNORED_WEBHOOKS.labels(vendor.source).inc()
                        return {"success": True, "ignored": vendor.ignored_reason}
                    try:
                        ticket = vendor.translate(payload)
                    except TranslationError as exc:
                        raise bad_payload(exc) from exc
                    await webhooks.api.check_webhook_rate(vendor.source)
                    await webhooks.accept(ticket)
            return SUCCESS

        return receive

    for vendor in VENDORS:
        router.add_api_route(vendor.path, vendor_route(vendor), methods=["POST"],
                             openapi_extra=request_bodies.WEBHOOK_BODIES[vendor.path],
                             name=f"{vendor.source}_webhook")
    return router
