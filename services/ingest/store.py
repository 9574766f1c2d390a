"""Ingest's persistence: which account each user belongs to (from their latest group call),
and which message ids were already accepted (shared by every ingest instance)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import timedelta

from sqlalchemy import Column, DateTime, MetaData, Table, Text, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

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
ingest_message_ids = Table(
    "ingest_message_ids",
    metadata,
    Column("message_id", Text, primary_key=True),
    Column("received_at", DateTime(timezone=True), server_default=func.now()),
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


async def save_memberships(conn: AsyncConnection, changed: Mapping[str, Membership]) -> None:
    if not changed:
        return
    # Sorted: this runs in the request's dedupe transaction, so rows are locked in one order.
    statement = insert(user_accounts).values(
        [{"user_id": user, "account_id": m.account_id, "occurred_at": m.occurred_at}
         for user, m in sorted(changed.items())]
    )
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


_CLAIM = text(
    "INSERT INTO ingest_message_ids (message_id)"
    " SELECT id FROM unnest(CAST(:ids AS text[])) WITH ORDINALITY AS claimed(id, n) ORDER BY n"
    " ON CONFLICT (message_id) DO NOTHING RETURNING message_id"
)


async def claim_message_ids(conn: AsyncConnection, message_ids: Collection[str]) -> set[str]:
    """Record the ids in the caller's transaction; return those no one had recorded before.

    While the transaction is open, another instance claiming the same id waits for it: on
    commit it sees a duplicate, on rollback (the publish failed) it gets the id itself.
    Sorted, so two requests sharing ids always lock them in the same order (no deadlock).
    """
    if not message_ids:
        return set()
    # One array parameter rather than a VALUES row per id: a batch is up to 2,500 ids.
    rows = await conn.execute(_CLAIM, {"ids": sorted(message_ids)})
    return {r.message_id for r in rows}


async def prune_message_ids(engine: AsyncEngine, retention: timedelta) -> int:
    """Forget ids received longer ago than `retention`; how many were forgotten."""
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(ingest_message_ids)
            .where(ingest_message_ids.c.received_at < func.now() - retention)
        )
    return int(result.rowcount)
