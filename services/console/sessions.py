"""Console sessions, kept server-side: the cookie holds a random id whose SHA-256 is the key,
so signing out (or disabling the user) ends a session at once, on every console instance.
Each session has its own CSRF token, sent back in every form."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Column, DateTime, ForeignKey, MetaData, Table, Text, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.console.users import Role, User, users

metadata = MetaData()
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("session_hash", Text, primary_key=True),
    Column("user_id", Text, ForeignKey(users.c.user_id, ondelete="CASCADE"), nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    expires_at: datetime


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def start_session(engine: AsyncEngine, user: User, lifetime: timedelta) -> tuple[str, Session]:
    """A new session for `user`: the id for the cookie, and the session."""
    session_id = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        # Expired sessions go as new ones come: the table holds only live ones and a few stale.
        await conn.execute(delete(console_sessions).where(console_sessions.c.expires_at < func.now()))
        expires_at = (await conn.execute(
            console_sessions.insert().values(session_hash=_hash(session_id), user_id=user.user_id,
                                             csrf_token=csrf, expires_at=func.now() + lifetime)
            .returning(console_sessions.c.expires_at))).scalar_one()
    return session_id, Session(user, csrf, expires_at)


async def read_session(engine: AsyncEngine, session_id: str) -> Session | None:
    """The live session of an enabled user, or None (unknown, expired, signed out, disabled)."""
    async with engine.connect() as conn:
        row = (await conn.execute(
            select(users.c.user_id, users.c.email, users.c.role, users.c.created_at, users.c.disabled_at,
                   users.c.last_sign_in_at, console_sessions.c.csrf_token, console_sessions.c.expires_at)
            .join(users, users.c.user_id == console_sessions.c.user_id)
            .where(console_sessions.c.session_hash == _hash(session_id),
                   console_sessions.c.expires_at > func.now(), users.c.disabled_at.is_(None))
        )).first()
    if row is None:
        return None
    user = User(row.user_id, row.email, Role(row.role), row.created_at, row.disabled_at, row.last_sign_in_at)
    return Session(user, row.csrf_token, row.expires_at)


async def end_session(engine: AsyncEngine, session_id: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(console_sessions)
                           .where(console_sessions.c.session_hash == _hash(session_id)))
