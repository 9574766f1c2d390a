"""Solved tickets whose requester is not (yet) a contact with an email: kept, so a later explicit
mapping (an identify with `zendesk_user_id` or an email, or the admin API) still invites them
while the solve is recent. One row per (source, ticket): a redelivery is not kept twice."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text, delete, func, or_, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

metadata = MetaData()
survey_unmatched_tickets = Table(
    "survey_unmatched_tickets",
    metadata,
    Column("source", Text, primary_key=True),
    Column("ticket_id", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("requester_id", Text),
    Column("user_id", Text),
    Column("account_id", Text),
    Column("solved_at", DateTime(timezone=True), nullable=False),
    Column("kept_at", DateTime(timezone=True), nullable=False),
    Index("ix_survey_unmatched_tickets_kept", "kept_at"),
    Index("ix_survey_unmatched_tickets_user", "user_id", postgresql_where=text("user_id IS NOT NULL")),
    Index("ix_survey_unmatched_tickets_requester", "requester_id",
          postgresql_where=text("requester_id IS NOT NULL")),
)


@dataclass(frozen=True)
class SolvedTicket:
    """What the CSAT trigger needs of a solved ticket event."""

    source: str
    ticket_id: str
    solved_at: datetime
    account_id: str | None = None  # ingest's explicit mapping, if any
    user_id: str | None = None
    requester_email: str | None = None
    requester_id: str | None = None  # Zendesk's requester user id


@dataclass(frozen=True)
class KeptTicket:
    ticket: SolvedTicket
    reason: str
    kept_at: datetime


async def keep(conn: AsyncConnection, ticket: SolvedTicket, reason: str, now: datetime) -> bool:
    """True when the ticket was not kept before (so it is counted once)."""
    statement = insert(survey_unmatched_tickets).values(
        source=ticket.source, ticket_id=ticket.ticket_id, reason=reason,
        requester_id=ticket.requester_id, user_id=ticket.user_id, account_id=ticket.account_id,
        solved_at=ticket.solved_at, kept_at=now,
    ).on_conflict_do_nothing(index_elements=["source", "ticket_id"]).returning(
        survey_unmatched_tickets.c.ticket_id)
    return (await conn.execute(statement)).first() is not None


async def lock_kept_for(conn: AsyncConnection, *, user_ids: Collection[str],
                        requester_ids: Collection[str], solved_after: datetime) -> list[SolvedTicket]:
    """Kept tickets of these users or Zendesk requesters still recent enough to invite, locked."""
    t = survey_unmatched_tickets
    conditions = []
    if user_ids:
        conditions.append(t.c.user_id.in_(sorted(user_ids)))
    if requester_ids:
        conditions.append(t.c.requester_id.in_(sorted(requester_ids)))
    if not conditions:
        return []
    rows = await conn.execute(select(t).where(or_(*conditions), t.c.solved_at >= solved_after)
                              .order_by(t.c.source, t.c.ticket_id).with_for_update())
    return [_kept(row).ticket for row in rows]


async def forget(conn: AsyncConnection, tickets: Collection[SolvedTicket]) -> None:
    if not tickets:
        return
    t = survey_unmatched_tickets
    await conn.execute(delete(t).where(
        tuple_(t.c.source, t.c.ticket_id).in_(sorted((k.source, k.ticket_id) for k in tickets))))


async def list_kept(conn: AsyncConnection, limit: int) -> tuple[int, list[KeptTicket]]:
    t = survey_unmatched_tickets
    count = (await conn.execute(select(func.count()).select_from(t))).scalar_one()
    rows = await conn.execute(select(t).order_by(t.c.kept_at.desc(), t.c.ticket_id).limit(limit))
    return int(count), [_kept(row) for row in rows]


def _kept(row: Any) -> KeptTicket:
    return KeptTicket(
        SolvedTicket(source=row.source, ticket_id=row.ticket_id, solved_at=row.solved_at,
                     account_id=row.account_id, user_id=row.user_id, requester_id=row.requester_id),
        row.reason, row.kept_at)
