"""Help-desk webhook routes: verify the vendor's signature, translate, map, publish.

A webhook whose secret is not configured answers 404 (`webhook_not_configured`): the
endpoint is off, as the admin API is without its token. Signature problems answer 401
naming the header and what was wrong; an unreadable payload 400 naming the field. A signed
delivery that is not a ticket event (an Intercom ping, another topic) answers 200 and is
ignored, so the vendor does not retry it. Otherwise 200 only after Kafka acked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import SecretStr

from services.ingest.api import IngestApi
from services.ingest.helpdesk import generic, intercom, zendesk
from services.ingest.helpdesk.mapping import lookup_keys, parse_mappings_setting, resolve_account
from services.ingest.helpdesk.metrics import IGNORED_WEBHOOKS, UNMAPPED_TICKETS
from services.ingest.helpdesk.signatures import (
    SignatureError,
    verify_generic,
    verify_intercom,
    verify_zendesk,
)
from services.ingest.helpdesk.store import load_mappings, upsert_mappings
from services.ingest.helpdesk.ticket import HelpdeskTicket, TranslationError, ticket_envelope
from services.ingest.metrics import EVENTS_ACCEPTED, REJECTED_REQUESTS
from shared.events import utcnow
from shared.http import ApiError, invalid_request, parse_json, read_body_limited, validate_body

SUCCESS: dict[str, Any] = {"success": True}


class HelpdeskWebhooks:
    def __init__(self, api: IngestApi) -> None:
        self.api = api
        self.settings = api.settings
        # Parsed now so a malformed setting stops the service before it serves anything.
        self.configured_mappings = parse_mappings_setting(self.settings.ticket_account_mappings)

    async def seed_mappings(self) -> None:
        await upsert_mappings(self.api.engine, self.configured_mappings)

    def secret(self, value: SecretStr | None, name: str, variable: str) -> str:
        if value is None:
            raise ApiError(404, "webhook_not_configured",
                           f"the {name} webhook is off: set {variable} to its signing secret")
        return value.get_secret_value()

    async def read_body(self, request: Request) -> bytes:
        return await read_body_limited(request, self.settings.max_request_bytes)

    async def accept(self, ticket: HelpdeskTicket) -> None:
        self.api.check_rate(ticket.source, 1)
        account = ticket.account_id
        if account is None:
            known = await load_mappings(self.api.engine,
                                        lookup_keys(ticket.organization_id, ticket.requester_email))
            account = resolve_account(ticket.organization_id, ticket.requester_email, known).account_id
        envelope = ticket_envelope(ticket, account_id=account, received_at=utcnow())
        if await self.api.publish_new([envelope]):
            EVENTS_ACCEPTED.labels("ticket", ticket.source).inc()
            if account is None:
                UNMAPPED_TICKETS.labels(ticket.source).inc()


def unauthorized(exc: SignatureError) -> ApiError:
    return ApiError(401, exc.code, exc.message)


def bad_payload(exc: TranslationError) -> ApiError:
    return invalid_request([{"field": exc.field, "message": exc.message}])


def build_helpdesk_router(webhooks: HelpdeskWebhooks) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks")
    settings = webhooks.settings

    @router.post("/zendesk")
    async def zendesk_webhook(request: Request) -> dict[str, Any]:
        try:
            secret = webhooks.secret(settings.zendesk_webhook_secret, "Zendesk",
                                     "CHURNWATCH_ZENDESK_WEBHOOK_SECRET")
            body = await webhooks.read_body(request)
            try:
                verify_zendesk(secret, body,
                               request.headers.get("x-zendesk-webhook-signature"),
                               request.headers.get("x-zendesk-webhook-signature-timestamp"),
                               now=utcnow(), max_age_seconds=settings.webhook_max_age_seconds)
            except SignatureError as exc:
                raise unauthorized(exc) from exc
            payload = parse_json(body)
            if not zendesk.is_ticket_event(payload):
                IGNORED_WEBHOOKS.labels(zendesk.SOURCE).inc()
                return {"success": True, "ignored": "not a zen:event-type:ticket.* event"}
            try:
                ticket = zendesk.translate(payload)
            except TranslationError as exc:
                raise bad_payload(exc) from exc
            await webhooks.accept(ticket)
        except ApiError as exc:
            REJECTED_REQUESTS.labels(exc.code).inc()
            raise
        return SUCCESS

    @router.post("/intercom")
    async def intercom_webhook(request: Request) -> dict[str, Any]:
        try:
            secret = webhooks.secret(settings.intercom_webhook_secret, "Intercom",
                                     "CHURNWATCH_INTERCOM_WEBHOOK_SECRET")
            body = await webhooks.read_body(request)
            try:
                verify_intercom(secret, body, request.headers.get("x-hub-signature"))
            except SignatureError as exc:
                raise unauthorized(exc) from exc
            payload = parse_json(body)
            if not intercom.is_ticket_notification(payload):
                IGNORED_WEBHOOKS.labels(intercom.SOURCE).inc()
                return {"success": True, "ignored": "not a ticket.* notification"}
            try:
                ticket = intercom.translate(payload)
            except TranslationError as exc:
                raise bad_payload(exc) from exc
            await webhooks.accept(ticket)
        except ApiError as exc:
            REJECTED_REQUESTS.labels(exc.code).inc()
            raise
        return SUCCESS

    @router.post("/tickets")
    async def tickets_webhook(request: Request) -> dict[str, Any]:
        try:
            secret = webhooks.secret(settings.tickets_webhook_secret, "generic tickets",
                                     "CHURNWATCH_TICKETS_WEBHOOK_SECRET")
            body = await webhooks.read_body(request)
            try:
                verify_generic(secret, body, request.headers.get("x-churnwatch-signature"))
            except SignatureError as exc:
                raise unauthorized(exc) from exc
            event = validate_body(generic.WebhookTicketEvent, parse_json(body))
            await webhooks.accept(generic.translate(event))
        except ApiError as exc:
            REJECTED_REQUESTS.labels(exc.code).inc()
            raise
        return SUCCESS

    return router
