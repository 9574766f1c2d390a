"""Scoring's persistence: per-account state and the history of score changes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    Identity,
    MetaData,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

metadata = MetaData()
account_health = Table(
    "account_health",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("state", JSONB, nullable=False),
    Column("score", Float),
    Column("band", Text),
    Column("factors", JSONB, nullable=False),
    Column("last_event_at", DateTime(timezone=True)),
    Column("events_applied", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
)
score_changes = Table(
    "score_changes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("previous_score", Float),
    Column("score", Float, nullable=False),
    Column("previous_band", Text),
    Column("band", Text, nullable=False),
    Column("factors", JSONB, nullable=False),
    Column("recorded_at", DateTime(timezone=True), server_default=func.now()),
)


@dataclass
class StoredAccount:
    account_id: str
    state: dict[str, Any]
    score: float | None
    band: str | None
    factors: list[dict[str, Any]]
    last_event_at: datetime | None
    events_applied: int


async def lock_accounts(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, StoredAccount]:
    """Rows of these accounts, locked until the batch commits."""
    wanted = sorted(set(account_ids))  # a fixed lock order: no deadlock between two consumers
    if not wanted:
        return {}
    rows = await session.execute(
        select(account_health).where(account_health.c.account_id.in_(wanted))
        .order_by(account_health.c.account_id).with_for_update()
    )
    return {
        r.account_id: StoredAccount(r.account_id, r.state, r.score, r.band, r.factors,
                                    r.last_event_at, r.events_applied)
        for r in rows
    }


async def save_accounts(session: AsyncSession, accounts: Iterable[StoredAccount]) -> None:
    values = [
        {"account_id": a.account_id, "state": a.state, "score": a.score, "band": a.band,
         "factors": a.factors, "last_event_at": a.last_event_at, "events_applied": a.events_applied}
        for a in accounts
    ]
    if not values:
        return
    statement = insert(account_health).values(values)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["account_id"],
        set_={name: statement.excluded[name] for name in
              ("state", "score", "band", "factors", "last_event_at", "events_applied")}
        | {"updated_at": func.now()},
    ))


async def record_changes(session: AsyncSession, changes: list[dict[str, Any]]) -> None:
    if changes:
        await session.execute(insert(score_changes).values(changes))


async def read_account(conn: AsyncConnection, account_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(
        select(account_health).where(account_health.c.account_id == account_id)
    )).mappings().first()
    return dict(row) if row is not None else None
