"""Ingest's persistence: which account each user belongs to (from their latest group call)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import Column, DateTime, MetaData, Table, Text, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.attribution import Membership

metadata = MetaData()
user_accounts = Table(
    "user_accounts",
    metadata,
    Column("user_id", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
)


async def load_memberships(engine: AsyncEngine, user_ids: Iterable[str]) -> dict[str, Membership]:
    wanted = list(user_ids)
    if not wanted:
        return {}
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(user_accounts.c.user_id, user_accounts.c.account_id,
                   user_accounts.c.occurred_at).where(user_accounts.c.user_id.in_(wanted))
        )
        return {r.user_id: Membership(r.account_id, r.occurred_at) for r in rows}


async def save_memberships(engine: AsyncEngine, changed: Mapping[str, Membership]) -> None:
    if not changed:
        return
    statement = insert(user_accounts).values(
        [{"user_id": user, "account_id": m.account_id, "occurred_at": m.occurred_at}
         for user, m in changed.items()]
    )
    async with engine.begin() as conn:
        await conn.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id"],
                set_={"account_id": statement.excluded.account_id,
                      "occurred_at": statement.excluded.occurred_at,
                      "updated_at": func.now()},
                # Event time decides: a late-arriving older group call does not win.
                where=user_accounts.c.occurred_at <= statement.excluded.occurred_at,
            )
        )
