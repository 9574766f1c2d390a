"""Console users: an email, a role, an argon2 password hash, and whether they may sign in.

Roles: a `csm` sees the accounts they own (by the accounts' `csm_email`), a `lead` sees every
account, an `admin` also manages tokens and users. Passwords are people's, so guessable: they
are hashed with argon2id (argon2-cffi's defaults, the RFC 9106 low-memory profile), never SHA.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CheckConstraint, Column, DateTime, MetaData, Table, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

metadata = MetaData()
users = Table(
    "users",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("email", Text, nullable=False, unique=True),
    Column("role", Text, nullable=False),
    Column("password_hash", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("disabled_at", DateTime(timezone=True)),
    Column("last_sign_in_at", DateTime(timezone=True)),
    CheckConstraint("role IN ('csm', 'lead', 'admin')", name="users_role_known"),
    CheckConstraint("email = lower(email)", name="users_email_lower"),
)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email takes as long as a wrong password.
_DECOY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    CSM = "csm"
    LEAD = "lead"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    user_id: str
    email: str
    role: Role
    created_at: datetime
    disabled_at: datetime | None
    last_sign_in_at: datetime | None

    @property
    def sees_every_account(self) -> bool:
        return self.role in (Role.LEAD, Role.ADMIN)


class UserExists(Exception):
    pass


def normalise_email(email: str) -> str:
    return email.strip().lower()


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"must be at least {MIN_PASSWORD_LENGTH} characters"
    if len(password) > MAX_PASSWORD_LENGTH:
        return f"must be at most {MAX_PASSWORD_LENGTH} characters"
    return None


_COLUMNS = (users.c.user_id, users.c.email, users.c.role, users.c.created_at, users.c.disabled_at,
            users.c.last_sign_in_at)


def _user(row: object) -> User:
    return User(row.user_id, row.email, Role(row.role), row.created_at,  # type: ignore[attr-defined]
                row.disabled_at, row.last_sign_in_at)  # type: ignore[attr-defined]


async def create_user(engine: AsyncEngine, email: str, role: Role, password: str) -> User:
    values = {"user_id": "usr_" + secrets.token_hex(8), "email": normalise_email(email), "role": role.value,
              "password_hash": await asyncio.to_thread(_hasher.hash, password)}
    try:
        async with engine.begin() as conn:
            row = (await conn.execute(users.insert().values(**values).returning(*_COLUMNS))).one()
    except IntegrityError as exc:
        raise UserExists(values["email"]) from exc
    return _user(row)


async def list_users(engine: AsyncEngine) -> list[User]:
    async with engine.connect() as conn:
        return [_user(r) for r in await conn.execute(select(*_COLUMNS).order_by(users.c.email))]


async def get_user(engine: AsyncEngine, user_id: str) -> User | None:
    async with engine.connect() as conn:
        row = (await conn.execute(select(*_COLUMNS).where(users.c.user_id == user_id))).first()
    return _user(row) if row is not None else None


async def disable_user(engine: AsyncEngine, email: str) -> User | None:
    """Disable sign-in (idempotent; sessions of a disabled user stop working); None if unknown."""
    address = normalise_email(email)
    async with engine.begin() as conn:
        await conn.execute(update(users).where(users.c.email == address, users.c.disabled_at.is_(None))
                           .values(disabled_at=func.now()))
        row = (await conn.execute(select(*_COLUMNS).where(users.c.email == address))).first()
    return _user(row) if row is not None else None


async def authenticate(engine: AsyncEngine, email: str, password: str) -> User | None:
    """The user if the email and password match an enabled account; None otherwise (which one
    was wrong is not said, and takes the same time)."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(*_COLUMNS, users.c.password_hash)
                                  .where(users.c.email == normalise_email(email)))).first()
    try:
        # Off the event loop: argon2 is meant to take tens of milliseconds of CPU.
        stored = row.password_hash if row is not None else _DECOY_HASH
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled_at is not None:
        return None
    async with engine.begin() as conn:
        signed_in = update(users).where(users.c.user_id == row.user_id)
        await conn.execute(signed_in.values(last_sign_in_at=func.now()))
        if _hasher.check_needs_rehash(row.password_hash):
            await conn.execute(update(users).where(users.c.user_id == row.user_id)
                               .values(password_hash=await asyncio.to_thread(_hasher.hash, password)))
    return _user(row)
