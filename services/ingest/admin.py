"""The admin API for write keys: `POST/GET /v1/admin/write-keys`, `DELETE .../{key_id}`.

Guarded by `Authorization: Bearer <CHURNWATCH_ADMIN_TOKEN>`. Without that setting the admin
API does not exist (404), so a deployment never runs it with a default or empty token.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.keys import KeyInfo, issue_key, list_keys, revoke_key
from shared.http import ApiError, parse_json, read_body_limited, validate_body
from shared.settings import Settings

MAX_ADMIN_BODY_BYTES = 16_000


class NewWriteKey(BaseModel):
    source: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")


def _key_json(info: KeyInfo) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {"key_id": info.key_id, "key_prefix": info.key_prefix, "source": info.source,
            "created_at": when(info.created_at), "revoked_at": when(info.revoked_at)}


def require_admin(settings: Settings, request: Request) -> None:
    if settings.admin_token is None:
        raise ApiError(404, "admin_disabled",
                       "the admin API is disabled: set CHURNWATCH_ADMIN_TOKEN to enable it")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = settings.admin_token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise ApiError(401, "invalid_admin_token",
                       "send the admin token as Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": "Bearer"})


def build_admin_router(settings: Settings, engine: AsyncEngine) -> APIRouter:
    router = APIRouter(prefix="/admin/write-keys")

    @router.post("", status_code=201)
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
