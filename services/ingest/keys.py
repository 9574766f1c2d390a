"""Write-key administration: issue, list and revoke keys. Only the hash of a key is stored.

Used by the admin API and `churnwatch write-keys`. Ingest checks a key on every request in
the database (services/ingest/store.py, with its rate, in one statement; surveys through
shared/write_keys.py), never from a cache, so a revoked key is refused from the next request
on, by every instance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.write_keys import PREFIX_LENGTH, hash_key, key_id_for, new_key, write_keys


@dataclass(frozen=True)
class KeyInfo:
    key_id: str | None  # None only for keys seeded before ids existed
    key_prefix: str | None
    source: str
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedKey:
    info: KeyInfo
    key: str


async def issue_key(engine: AsyncEngine, source: str) -> IssuedKey:
    key = new_key()
    key_id = key_id_for(key)
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                write_keys.insert()
                .values(key_hash=hash_key(key), source=source, key_id=key_id,
                        key_prefix=key[:PREFIX_LENGTH])
                .returning(write_keys.c.created_at)
            )
        ).one()
    return IssuedKey(KeyInfo(key_id, key[:PREFIX_LENGTH], source, row.created_at, None), key)


async def list_keys(engine: AsyncEngine) -> list[KeyInfo]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(write_keys.c.key_id, write_keys.c.key_prefix, write_keys.c.source,
                   write_keys.c.created_at, write_keys.c.revoked_at)
            .order_by(write_keys.c.created_at, write_keys.c.key_id)
        )
        return [KeyInfo(r.key_id, r.key_prefix, r.source, r.created_at, r.revoked_at) for r in rows]


async def revoke_key(engine: AsyncEngine, key_id: str) -> KeyInfo | None:
    """Revoke the key (idempotent: a second revoke keeps the first time); None if unknown."""
    async with engine.begin() as conn:
        await conn.execute(
            update(write_keys)
            .where(write_keys.c.key_id == key_id, write_keys.c.revoked_at.is_(None))
            .values(revoked_at=func.now())
        )
        row = (
            await conn.execute(
                select(write_keys.c.key_id, write_keys.c.key_prefix, write_keys.c.source,
                       write_keys.c.created_at, write_keys.c.revoked_at)
                .where(write_keys.c.key_id == key_id)
            )
        ).first()
    if row is None:
        return None
    return KeyInfo(row.key_id, row.key_prefix, row.source, row.created_at, row.revoked_at)
