"""Write keys: what product backends and survey tools authenticate with.

Keys are random and long, so a plain SHA-256 is enough to store them without keeping the
secret itself (a leaked table does not leak keys). Ingest and surveys both check them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets

from fastapi import Request
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.http import ApiError

metadata = MetaData()
write_keys = Table(
    "write_keys",
    metadata,
    Column("key_hash", Text, primary_key=True),
    Column("source", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
    Column("key_id", Text, unique=True),
    Column("key_prefix", Text),
)

# Enough of the key to recognise it in a client's config, far too little to guess the rest.
PREFIX_LENGTH = 8


def key_id_for(key: str) -> str:
    """A public id for a key, stable for the same key (so seeding it twice is one row)."""
    return "wk_" + hash_key(key)[:16]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return "cw_" + secrets.token_urlsafe(24)


def key_from_headers(request: Request) -> str | None:
    """The write key from `Authorization: Basic base64(key:)` or `Authorization: Bearer key`."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise ApiError(401, "invalid_auth", "Authorization: Basic is not valid base64") from exc
        return decoded.partition(":")[0] or None
    if scheme.lower() == "bearer" and value:
        return value
    return None


def write_key_for_tracking(request: Request, body_key: object) -> str | None:
    """The write key of a Segment-style request: the Basic auth username, else `writeKey` in the
    body, else a Bearer token.

    The body's `writeKey` wins over a Bearer token because Segment's own clients send an OAuth
    access token as the Bearer together with the write key in the body.
    """
    header = request.headers.get("authorization", "")
    if header.partition(" ")[0].lower() == "basic":
        return key_from_headers(request)
    if isinstance(body_key, str) and body_key:
        return body_key
    return key_from_headers(request)


async def seed_key(engine: AsyncEngine, key: str, source: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(write_keys)
            .values(key_hash=hash_key(key), source=source, key_id=key_id_for(key),
                    key_prefix=key[:PREFIX_LENGTH])
            .on_conflict_do_nothing()
        )


async def source_for_key(engine: AsyncEngine, key: str | None) -> str:
    """The source the key was issued to; 401 for a missing, unknown or revoked key."""
    if not key:
        raise ApiError(401, "missing_write_key",
                       "no write key: send it as the Basic auth username, as a Bearer token, "
                       "or as writeKey in the body")
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(write_keys.c.source, write_keys.c.revoked_at).where(
                    write_keys.c.key_hash == hash_key(key)
                )
            )
        ).first()
    if row is None or row.revoked_at is not None:
        raise ApiError(401, "invalid_write_key", "the write key is unknown or revoked")
    return str(row.source)
