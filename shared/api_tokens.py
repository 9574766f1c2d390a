"""API tokens: what people and programs (the console, a CRM, scripts) read the APIs with.

A token is 32 random bytes, so a plain SHA-256 stores it safely (a leaked table leaks no
token; argon2's slowness is for guessable passwords, and would cost every request). A token
carries scopes; `admin` stands for all of them. Every service checks tokens in this one
table, from the database on each request, so a revoked token is refused from its next
request on, by every instance.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import ARRAY, Column, DateTime, MetaData, Table, Text, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("token_id", Text, primary_key=True),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("token_prefix", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

TOKEN_PREFIX = "cwt_"
# Enough of a token to recognise it in a config file, far too little to guess the rest.
SHOWN_PREFIX_LENGTH = 10
# last_used_at is written at most this often per token: a write per request would cost more
# than the check itself, and nobody needs it to the second.
LAST_USED_GRANULARITY = timedelta(minutes=1)


class Scope(StrEnum):
    READ_HEALTH = "read:health"
    READ_ALERTS = "read:alerts"
    READ_SURVEYS = "read:surveys"
    WRITE_OVERRIDES = "write:overrides"
    ADMIN = "admin"


def grants(scopes: frozenset[str], needed: Scope) -> bool:
    return needed.value in scopes or Scope.ADMIN.value in scopes


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_id_for(token: str) -> str:
    """A public id, stable for the same token (so seeding one twice is one row)."""
    return "tok_" + hash_token(token)[:16]


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    token_prefix: str
    name: str
    scopes: frozenset[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedToken:
    info: TokenInfo
    token: str


_COLUMNS = (api_tokens.c.token_id, api_tokens.c.token_prefix, api_tokens.c.name, api_tokens.c.scopes,
            api_tokens.c.created_at, api_tokens.c.last_used_at, api_tokens.c.revoked_at)


def _info(row: object) -> TokenInfo:
    return TokenInfo(row.token_id, row.token_prefix, row.name, frozenset(row.scopes),  # type: ignore[attr-defined]
                     row.created_at, row.last_used_at, row.revoked_at)  # type: ignore[attr-defined]


def _values(token: str, name: str, scopes: frozenset[Scope]) -> dict[str, object]:
    return {"token_id": token_id_for(token), "token_hash": hash_token(token),
            "token_prefix": token[:SHOWN_PREFIX_LENGTH], "name": name,
            "scopes": sorted(s.value for s in scopes)}


async def issue_token(engine: AsyncEngine, name: str, scopes: frozenset[Scope]) -> IssuedToken:
    token = new_token()
    async with engine.begin() as conn:
        row = (await conn.execute(
            api_tokens.insert().values(**_values(token, name, scopes)).returning(*_COLUMNS)
        )).one()
    return IssuedToken(_info(row), token)


async def seed_token(engine: AsyncEngine, token: str, name: str, scopes: frozenset[Scope]) -> None:
    """A token given in configuration (`make run`'s development token); a revoked one stays revoked."""
    async with engine.begin() as conn:
        await conn.execute(insert(api_tokens).values(**_values(token, name, scopes)).on_conflict_do_nothing())


async def list_tokens(engine: AsyncEngine) -> list[TokenInfo]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(*_COLUMNS).order_by(api_tokens.c.created_at, api_tokens.c.token_id))
        return [_info(r) for r in rows]


async def revoke_token(engine: AsyncEngine, token_id: str) -> TokenInfo | None:
    """Revoke it (idempotent: a second revoke keeps the first time); None if unknown."""
    async with engine.begin() as conn:
        await conn.execute(update(api_tokens)
                           .where(api_tokens.c.token_id == token_id, api_tokens.c.revoked_at.is_(None))
                           .values(revoked_at=func.now()))
        row = (await conn.execute(select(*_COLUMNS).where(api_tokens.c.token_id == token_id))).first()
    return _info(row) if row is not None else None


async def find_token(engine: AsyncEngine, token: str) -> TokenInfo | None:
    """The token's record, its last use noted (coarsely); None if nobody issued it."""
    digest = hash_token(token)
    async with engine.connect() as conn:
        row = (await conn.execute(select(*_COLUMNS).where(api_tokens.c.token_hash == digest))).first()
        if row is None:
            return None
        info = _info(row)
        stale = datetime.now(UTC) - LAST_USED_GRANULARITY
        if info.active and (info.last_used_at is None or info.last_used_at < stale):
            await conn.execute(update(api_tokens).where(api_tokens.c.token_hash == digest)
                               .values(last_used_at=func.now()))
            await conn.commit()
    return info
