"""Surveys' admin API: survey definitions, contacts (explicit respondent mappings, Zendesk
requester ids), unmapped responses, solved tickets kept unmatched, unsubscribes. All under
`/v1/admin/`, with `Authorization: Bearer <CHURNWATCH_ADMIN_TOKEN>` (the token ingest's
write-key admin uses); without that setting the admin API does not exist (404), so it never
runs with a default or empty token.

Definitions are never deleted (responses and invitations refer to them): DELETE archives
one, which stops new invitations while links already sent keep working until they expire.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys.contacts import ZENDESK_USER_ID_TRAIT, contact_from_traits
from services.surveys.invitations.definitions import (
    DefinitionIn,
    Status,
    new_definition_id,
    validate_definition,
)
from services.surveys.invitations.ticket_csat import TicketCsat, TicketOutcome
from services.surveys.metrics import UNSUBSCRIBES
from services.surveys.responses.attribution import normalize_email
from services.surveys.responses.recording import ResponseRecorder, envelopes_for
from services.surveys.responses.revisions import StoredResponse
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import contacts as contact_store
from services.surveys.store import responses as store
from services.surveys.store import tickets as ticket_store
from shared.account_facts import merge_traits
from shared.deps import Now
from shared.http import ApiError, parse_json, read_body_limited, require_bearer, validate_body
from shared.openapi_bodies import json_body
from shared.publisher import PublishFailed
from shared.settings import Settings

MAX_ADMIN_BODY_BYTES = 64_000
Clock = Callable[[], datetime]


def require_admin(settings: Settings, request: Request) -> None:
    require_bearer(request, settings.admin_token, "CHURNWATCH_ADMIN_TOKEN")


class ContactIn(BaseModel):
    """An explicit contact: who the person is and which accounts they answer for."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=200)
    role: str | None = Field(default=None, max_length=200)
    account_ids: list[str] = Field(default_factory=list, max_length=100)
    # The person's Zendesk user id: their Zendesk tickets' CSAT finds them by it.
    zendesk_user_id: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        email = normalize_email(value)
        if email is None:
            raise PydanticCustomError("email", "must be an email address")
        return email

    @field_validator("account_ids")
    @classmethod
    def _accounts(cls, values: list[str]) -> list[str]:
        if any(not v.strip() or len(v) > 200 for v in values):
            raise PydanticCustomError("account", "account ids are 1 to 200 characters")
        return sorted({v.strip() for v in values})


class UnsubscribeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(max_length=320)

    @field_validator("email")
    @classmethod
    def _address(cls, value: str) -> str:
        email = normalize_email(value)
        if email is None:
            raise PydanticCustomError("email", "must be an email address")
        return email


def _response_json(r: StoredResponse) -> dict[str, Any]:
    return {"response_id": r.response_id, "survey_type": r.survey_type.value, "score": r.score,
            "comment": r.comment, "user_id": r.user_id, "respondent_email": r.respondent_email,
            "channel": r.channel.value, "submitted_at": r.submitted_at.isoformat(),
            "revision": r.revision}


def build_admin_router(settings: Settings, engine: AsyncEngine, recorder: ResponseRecorder,
                       tier_names: list[str], csat: TicketCsat | None,
                       on_new_invitations: Callable[[], None]) -> APIRouter:
    """`csat` None: invitations are off (no link secret), kept tickets stay kept."""
    router = APIRouter(prefix="/v1/admin")

    async def body_of(request: Request) -> Any:
        require_admin(settings, request)
        return parse_json(await read_body_limited(request, MAX_ADMIN_BODY_BYTES))

    def unknown(definition_id: str) -> ApiError:
        return ApiError(404, "unknown_survey", f"no survey with id {definition_id!r}")

    @router.post("/surveys", status_code=201, openapi_extra=json_body(DefinitionIn))
    async def create_survey(request: Request, now: Now) -> dict[str, Any]:
        body = validate_definition(await body_of(request), tier_names)
        async with engine.begin() as conn:
            definition = await campaign_store.create_definition(conn, new_definition_id(), body, now)
        return definition.as_json()

    @router.get("/surveys")
    async def list_surveys(request: Request) -> dict[str, Any]:
        require_admin(settings, request)
        async with engine.connect() as conn:
            return {"surveys": [d.as_json() for d in await campaign_store.list_definitions(conn)]}

    @router.get("/surveys/{definition_id}")
    async def get_survey(request: Request, definition_id: str) -> dict[str, Any]:
        require_admin(settings, request)
        async with engine.connect() as conn:
            definition = await campaign_store.load_definition(conn, definition_id)
        if definition is None:
            raise unknown(definition_id)
        return definition.as_json()

    @router.put("/surveys/{definition_id}", openapi_extra=json_body(DefinitionIn))
    async def replace_survey(request: Request, definition_id: str, now: Now) -> dict[str, Any]:
        body = validate_definition(await body_of(request), tier_names)
        async with engine.begin() as conn:
            current = await campaign_store.lock_definition(conn, definition_id)
            if current is None:
                raise unknown(definition_id)
            if (current.survey_type != body.survey_type or current.trigger != body.trigger) and \
                    await campaign_store.has_invitations(conn, definition_id):
                changed = "survey_type" if current.survey_type != body.survey_type else "trigger"
                raise ApiError(409, "survey_in_use", (
                    f"{changed}: survey {definition_id} has sent invitations, so its answers would "
                    f"mix two kinds; create a new survey instead"),
                    [{"field": changed, "message": "cannot change once invitations were sent"}])
            updated = await campaign_store.replace_definition(conn, definition_id, body, now)
        assert updated is not None
        return updated.as_json()

    @router.delete("/surveys/{definition_id}")
    async def archive_survey(request: Request, definition_id: str, now: Now) -> dict[str, Any]:
        require_admin(settings, request)
        async with engine.begin() as conn:
            archived = await campaign_store.set_status(conn, definition_id, Status.ARCHIVED, now)
        if archived is None:
            raise unknown(definition_id)
        return archived.as_json()

    @router.put("/contacts/{user_id}", openapi_extra=json_body(ContactIn))
    async def put_contact(request: Request, user_id: str, now: Now) -> dict[str, Any]:
        """An explicit mapping: this user, with this email, answers for these accounts.
        Unmapped responses it makes mappable are mapped and published at once."""
        body = validate_body(ContactIn, await body_of(request))
        if not user_id.strip() or len(user_id) > 200:
            raise ApiError(400, "invalid_request", "user_id: 1 to 200 characters",
                           [{"field": "user_id", "message": "1 to 200 characters"}])
        try:
            async with engine.begin() as conn:
                stored = await contact_store.lock_contact_traits(conn, [user_id])
                incoming = {"email": body.email, **({"name": body.name} if body.name else {}),
                            **({"role": body.role} if body.role else {}),
                            **({ZENDESK_USER_ID_TRAIT: body.zendesk_user_id.strip()}
                               if body.zendesk_user_id else {})}
                traits = merge_traits(stored.get(user_id, {}), incoming, now)
                contact = contact_from_traits(user_id, traits)
                await contact_store.save_contacts(conn, [(contact, traits)])
                await contact_store.add_memberships(conn, [(user_id, a, now) for a in body.account_ids])
                mapped = await recorder.map_pending(conn, {user_id}, {body.email})
                await recorder.publisher.publish([e for d in mapped for e in envelopes_for(d)])
                memberships = (await contact_store.memberships_of(conn, {user_id})).get(user_id, [])
                tickets = TicketOutcome() if csat is None else await csat.on_contacts(
                    conn, user_ids={user_id},
                    zendesk_user_ids={contact.zendesk_user_id} if contact.zendesk_user_id else set())
        except PublishFailed as exc:
            raise ApiError(503, "kafka_unavailable", f"{exc}; nothing was stored, retry later",
                           headers={"Retry-After": "5"}) from exc
        tickets.count()
        if tickets.created:
            on_new_invitations()
        return {"user_id": user_id, "email": contact.email, "name": contact.name, "role": contact.role,
                "zendesk_user_id": contact.zendesk_user_id,
                "account_ids": sorted(m.account_id for m in memberships),
                "mapped_responses": [d.response.response_id for d in mapped],
                "invited_for_tickets": len(tickets.created)}

    @router.get("/contacts/{user_id}")
    async def get_contact(request: Request, user_id: str) -> dict[str, Any]:
        require_admin(settings, request)
        async with engine.connect() as conn:
            contact = await contact_store.load_contact(conn, user_id)
            if contact is None:
                raise ApiError(404, "unknown_contact", f"no contact with user id {user_id!r}")
            memberships = (await contact_store.memberships_of(conn, {user_id})).get(user_id, [])
            unsubscribed = bool(contact.email) and await campaign_store.is_unsubscribed(
                conn, contact.email or "")
            invitations = await campaign_store.invitations_to(conn, contact.email) if contact.email else []
        return {"user_id": user_id, "email": contact.email, "name": contact.name, "role": contact.role,
                "zendesk_user_id": contact.zendesk_user_id,
                "account_ids": sorted(m.account_id for m in memberships), "unsubscribed": unsubscribed,
                "invitations": [{"id": i.id, "survey_id": i.definition_id, "status": i.status,
                                 "created_at": i.created_at.isoformat(),
                                 "answered": i.used_at is not None} for i in invitations]}

    @router.get("/responses/unmapped")
    async def unmapped_responses(
        request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Responses kept without an account, newest first: map them with PUT /contacts/{user_id}."""
        require_admin(settings, request)
        async with engine.connect() as conn:
            count, responses = await store.list_unmapped(conn, limit)
        return {"unmapped": count, "responses": [_response_json(r) for r in responses]}

    @router.get("/tickets/unmatched")
    async def unmatched_tickets(
        request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> dict[str, Any]:
        """Solved tickets kept without a CSAT invitation, newest first: give the requester a
        contact (`zendesk_user_id` or email) with PUT /contacts/{user_id} while the solve is recent."""
        require_admin(settings, request)
        async with engine.connect() as conn:
            count, kept = await ticket_store.list_kept(conn, limit)
        return {"unmatched": count, "tickets": [
            {"source": k.ticket.source, "ticket_id": k.ticket.ticket_id, "reason": k.reason,
             "requester_id": k.ticket.requester_id, "user_id": k.ticket.user_id,
             "account_id": k.ticket.account_id, "solved_at": k.ticket.solved_at.isoformat(),
             "kept_at": k.kept_at.isoformat()} for k in kept]}

    @router.post("/unsubscribes", openapi_extra=json_body(UnsubscribeIn))
    async def unsubscribe(request: Request, now: Now) -> dict[str, Any]:
        """Record an unsubscribe a CSM was asked for by mail or phone."""
        body = validate_body(UnsubscribeIn, await body_of(request))
        async with engine.begin() as conn:
            new = await campaign_store.unsubscribe(conn, body.email, now, None)
        if new:
            UNSUBSCRIBES.labels("admin").inc()
        return {"email": body.email, "unsubscribed": True, "already": not new}

    return router
