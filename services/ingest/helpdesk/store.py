"""Ticket-to-account mappings in PostgreSQL (table from migration 0002; kinds widened in 0003_ingest)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Column, DateTime, MetaData, Table, Text, and_, delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.helpdesk.mapping import MappingKey, MappingKind, TicketMapping

metadata = MetaData()
ticket_account_mappings = Table(
    "ticket_account_mappings",
    metadata,
    Column("kind", Text, primary_key=True),
    Column("key", Text, primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


async def upsert_mappings(engine: AsyncEngine, mappings: Sequence[TicketMapping]) -> None:
    if not mappings:
        return
    statement = insert(ticket_account_mappings).values(
        [{"kind": m.kind.value, "key": m.key, "account_id": m.account_id} for m in mappings]
    )
    async with engine.begin() as conn:
        await conn.execute(statement.on_conflict_do_update(
            index_elements=["kind", "key"],
            set_={"account_id": statement.excluded.account_id},
        ))


async def load_mappings(engine: AsyncEngine, keys: Iterable[MappingKey]) -> dict[MappingKey, str]:
    wanted = list(keys)
    if not wanted:
        return {}
    table = ticket_account_mappings
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(table.c.kind, table.c.key, table.c.account_id).where(
                or_(*(and_(table.c.kind == kind.value, table.c.key == key) for kind, key in wanted))
            )
        )
        return {(MappingKind(r.kind), r.key): r.account_id for r in rows}


async def list_mappings(engine: AsyncEngine) -> list[TicketMapping]:
    table = ticket_account_mappings
    async with engine.connect() as conn:
        rows = await conn.execute(select(table.c.kind, table.c.key, table.c.account_id)
                                  .order_by(table.c.kind, table.c.key))
        return [TicketMapping(MappingKind(r.kind), r.key, r.account_id) for r in rows]


async def delete_mapping(engine: AsyncEngine, kind: MappingKind, key: str) -> bool:
    """Remove one mapping; False if there was none. Tickets already published keep their account."""
    table = ticket_account_mappings
    async with engine.begin() as conn:
        result = await conn.execute(delete(table).where(table.c.kind == kind.value, table.c.key == key))
    return bool(result.rowcount)
