"""The admin API: write keys (`POST/GET /v1/admin/write-keys`, `DELETE .../{key_id}`) and
help-desk ticket mappings (`GET /v1/admin/ticket-mappings`, `PUT/DELETE .../{kind}/{key}`).

Guarded by `Authorization: Bearer <CHURNWATCH_ADMIN_TOKEN>`. Without that setting the admin
API does not exist (404), so a deployment never runs it with a default or empty token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.helpdesk.mapping import MappingKind, TicketMapping, parse_mapping_name
from services.ingest.helpdesk.store import delete_mapping, list_mappings, upsert_mappings
from services.ingest.keys import KeyInfo, issue_key, list_keys, revoke_key
from shared.http import (
    ApiError,
    invalid_request,
    parse_json,
    read_body_limited,
    require_bearer,
    validate_body,
)
from shared.openapi_bodies import json_body
from shared.settings import Settings

MAX_ADMIN_BODY_BYTES = 16_000


class NewWriteKey(BaseModel):
    # The envelope's `source` holds at most 100 characters.
    source: str = Field(min_length=1, max_length=100, pattern=r"^\S(.*\S)?$")


class MappingTarget(BaseModel):
    account_id: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")


def _key_json(info: KeyInfo) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {"key_id": info.key_id, "key_prefix": info.key_prefix, "source": info.source,
            "created_at": when(info.created_at), "revoked_at": when(info.revoked_at)}


def require_admin(settings: Settings, request: Request) -> None:
    require_bearer(request, settings.admin_token, "CHURNWATCH_ADMIN_TOKEN")


def _mapping_json(mapping: TicketMapping) -> dict[str, str]:
    return {"kind": mapping.kind.value, "key": mapping.key, "account_id": mapping.account_id}


def _mapping_key(kind: str, key: str) -> tuple[MappingKind, str]:
    if kind not in {k.value for k in MappingKind}:
        raise invalid_request([{"field": "kind", "message": "must be one of "
                                + ", ".join(k.value for k in MappingKind)}])
    return parse_mapping_name(f"{kind}:{key}")


def build_admin_router(settings: Settings, engine: AsyncEngine) -> APIRouter:
    router = APIRouter(prefix="/admin")
    router.include_router(_write_keys_router(settings, engine))
    router.include_router(_ticket_mappings_router(settings, engine))
    return router


def _ticket_mappings_router(settings: Settings, engine: AsyncEngine) -> APIRouter:
    router = APIRouter(prefix="/ticket-mappings")

    @router.get("")
    async def list_all(request: Request) -> dict[str, list[dict[str, str]]]:
        require_admin(settings, request)
        return {"ticket_mappings": [_mapping_json(m) for m in await list_mappings(engine)]}

    @router.put("/{kind}/{key}", openapi_extra=json_body(
        MappingTarget, "The account this help-desk organisation or requester maps to."))
    async def put(request: Request, kind: str, key: str) -> dict[str, str]:
        require_admin(settings, request)
        mapping_kind, normalised = _mapping_key(kind, key)
        body = validate_body(MappingTarget,
                             parse_json(await read_body_limited(request, MAX_ADMIN_BODY_BYTES)))
        mapping = TicketMapping(mapping_kind, normalised, body.account_id)
        await upsert_mappings(engine, [mapping])
        return _mapping_json(mapping)

    @router.delete("/{kind}/{key}")
    async def remove(request: Request, kind: str, key: str) -> dict[str, str]:
        require_admin(settings, request)
        mapping_kind, normalised = _mapping_key(kind, key)
        if not await delete_mapping(engine, mapping_kind, normalised):
            raise ApiError(404, "unknown_ticket_mapping", f"no mapping {mapping_kind.value}:{normalised}")
        return {"kind": mapping_kind.value, "key": normalised, "deleted": "true"}

    return router


def _write_keys_router(settings: Settings, engine: AsyncEngine) -> APIRouter:
    router = APIRouter(prefix="/write-keys")

    @router.post("", status_code=201, openapi_extra=json_body(
        NewWriteKey, "The source the new write key sends events as."))
    async def create(request: Request) -> dict[str, Any]:
        require_admin(settings, request)
        body = validate_body(NewWriteKey,
                             parse_json(await read_body_limited(request, MAX_ADMIN_BODY_BYTES)))
        issued = await issue_key(engine, body.source)
        # The only time the key itself is shown: it is stored hashed.
        return {**_key_json(issued.info), "key": issued.key}

    @router.get("")
    async def list_all(request: Request) -> dict[str, list[dict[str, Any]]]:
        require_admin(settings, request)
        return {"write_keys": [_key_json(info) for info in await list_keys(engine)]}

    @router.delete("/{key_id}")
    async def revoke(request: Request, key_id: str) -> dict[str, Any]:
        require_admin(settings, request)
        info = await revoke_key(engine, key_id)
        if info is None:
            raise ApiError(404, "unknown_write_key", f"no write key with id {key_id!r}")
        return _key_json(info)

    return router
