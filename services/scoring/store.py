"""Scoring's persistence: account state per partition, the explained history, overrides audit.

Written once per consumed batch, in the consumer's transaction (with the offsets): only the
accounts the batch changed, in one statement. Read by the API and by a partition's new
owner after a rebalance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Identity,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    and_,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

metadata = MetaData()
account_health = Table(
    "account_health",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("state", LargeBinary, nullable=False),
    Column("account_name", Text),
    Column("segment", Text),
    Column("score", Float),
    Column("band", Text),
    Column("computed_score", Float),
    Column("computed_band", Text),
    Column("override", JSONB),
    Column("signals", JSONB, nullable=False),
    Column("renewal_date", Date),
    Column("mrr", Float),
    Column("churned", Boolean, nullable=False),
    Column("last_event_at", DateTime(timezone=True)),
    Column("next_due_at", DateTime(timezone=True)),
    Column("events_applied", BigInteger, nullable=False),
    Column("late_events", BigInteger, nullable=False),
    Column("scorecard_version", Text),
    Column("model_version", BigInteger),  # the churn-risk model the shown score is from; None: scorecard
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_account_health_partition", "partition"),
    Index("ix_account_health_band_score", "band", "score"),
    Index("ix_account_health_renewal", "renewal_date"),
)
score_changes = Table(
    "score_changes",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("account_id", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("cause_type", Text, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("previous_score", Float),
    Column("score", Float, nullable=False),
    Column("previous_band", Text),
    Column("band", Text, nullable=False),
    Column("computed_score", Float, nullable=False),
    Column("segment", Text, nullable=False),
    Column("override", Boolean, nullable=False),
    Column("factors", JSONB, nullable=False),
    Column("contributions", JSONB, nullable=False),
    Column("replayed", Boolean, nullable=False),
    Column("model_version", BigInteger),  # the churn-risk model that produced the score; None: scorecard
    Column("recorded_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_score_changes_account", "account_id", "id"),
    Index("ix_score_changes_account_time", "account_id", "occurred_at"),
)
scoring_partitions = Table(
    "scoring_partitions",
    metadata,
    Column("partition", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("max_event_at", Float),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("peers", LargeBinary),  # the partition's peer table (services/scoring/peers.py), deflated JSON
)
health_overrides = Table(
    "health_overrides",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("override_id", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("kind", Text),
    Column("score", Float),
    Column("band", Text),
    Column("reason", Text),
    Column("author", Text, nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    Column("event_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_health_overrides_account", "account_id", "id"),
)


@dataclass
class PartitionRow:
    version: int
    max_event_at: float | None
    peers: bytes | None = None


@dataclass
class AccountRow:
    account_id: str
    partition: int
    state: bytes
    account_name: str | None
    segment: str | None
    score: float | None
    band: str | None
    computed_score: float | None
    computed_band: str | None
    override: dict[str, Any] | None
    signals: dict[str, list[str]]
    renewal_date: date | None
    mrr: float | None
    churned: bool
    last_event_at: datetime | None
    next_due_at: datetime | None
    events_applied: int
    late_events: int
    scorecard_version: str
    model_version: int | None = None


# --- the consumer's side --------------------------------------------------------------------


async def lock_partitions(session: AsyncSession, partitions: Sequence[int]) -> dict[int, PartitionRow]:
    """The partitions' rows, created if new and locked until the batch commits."""
    await session.execute(
        insert(scoring_partitions)
        .values([{"partition": p, "version": 0} for p in partitions])
        .on_conflict_do_nothing()
    )
    rows = await session.execute(
        select(
            scoring_partitions.c.partition,
            scoring_partitions.c.version,
            scoring_partitions.c.max_event_at,
            scoring_partitions.c.peers,
        )
        .where(scoring_partitions.c.partition.in_(list(partitions)))
        .order_by(scoring_partitions.c.partition)
        .with_for_update()
    )
    return {p: PartitionRow(v, m, None if s is None else bytes(s)) for p, v, m, s in rows.all()}


_SAVE_PARTITIONS = text("""
UPDATE scoring_partitions SET version = t.v, max_event_at = t.m, peers = t.s, updated_at = now()
FROM unnest(CAST(:p AS int[]), CAST(:v AS int8[]), CAST(:m AS float8[]), CAST(:s AS bytea[]))
     AS t(p, v, m, s)
WHERE scoring_partitions.partition = t.p
""")


async def save_partitions(session: AsyncSession, rows: dict[int, PartitionRow]) -> None:
    if rows:
        await session.execute(_SAVE_PARTITIONS, {
            "p": list(rows), "v": [r.version for r in rows.values()],
            "m": [r.max_event_at for r in rows.values()], "s": [r.peers for r in rows.values()]})


async def load_partition(session: AsyncSession, partition: int) -> list[tuple[str, bytes]]:
    rows = await session.execute(
        select(account_health.c.account_id, account_health.c.state).where(
            account_health.c.partition == partition
        )
    )
    return [(a, bytes(s)) for a, s in rows.all()]


async def load_accounts(session: AsyncSession, account_ids: Sequence[str]) -> list[tuple[str, int, bytes]]:
    rows = await session.execute(
        select(account_health.c.account_id, account_health.c.partition, account_health.c.state)
        .where(account_health.c.account_id.in_(list(account_ids)))
        .with_for_update()
    )
    return [(a, p, bytes(s)) for a, p, s in rows.all()]


_UPSERT = text("""
INSERT INTO account_health (account_id, partition, state, account_name, segment, score, band,
    computed_score, computed_band, override, signals, renewal_date, mrr, churned,
    last_event_at, next_due_at, events_applied, late_events, scorecard_version, model_version, updated_at)
SELECT a, p, s, n, seg, sc, b, cs, cb, o::jsonb, sig::jsonb, rd, m, ch, le, nd, ea, la, v, mv, now()
FROM unnest(CAST(:a AS text[]), CAST(:p AS int[]), CAST(:s AS bytea[]), CAST(:n AS text[]),
            CAST(:seg AS text[]), CAST(:sc AS float8[]), CAST(:b AS text[]), CAST(:cs AS float8[]),
            CAST(:cb AS text[]), CAST(:o AS text[]), CAST(:sig AS text[]),
            CAST(:rd AS date[]), CAST(:m AS float8[]), CAST(:ch AS bool[]), CAST(:le AS timestamptz[]),
            CAST(:nd AS timestamptz[]), CAST(:ea AS int8[]), CAST(:la AS int8[]), CAST(:v AS text[]),
            CAST(:mv AS int8[]))
     AS t(a, p, s, n, seg, sc, b, cs, cb, o, sig, rd, m, ch, le, nd, ea, la, v, mv)
ON CONFLICT (account_id) DO UPDATE SET partition = excluded.partition, state = excluded.state,
    account_name = excluded.account_name, segment = excluded.segment, score = excluded.score,
    band = excluded.band, computed_score = excluded.computed_score,
    computed_band = excluded.computed_band,
    override = excluded.override, signals = excluded.signals,
    renewal_date = excluded.renewal_date, mrr = excluded.mrr, churned = excluded.churned,
    last_event_at = excluded.last_event_at, next_due_at = excluded.next_due_at,
    events_applied = excluded.events_applied, late_events = excluded.late_events,
    scorecard_version = excluded.scorecard_version, model_version = excluded.model_version,
    updated_at = now()
""")


def _json(value: Any) -> str | None:
    return None if value is None else orjson.dumps(value).decode()


async def save_accounts(session: AsyncSession, rows: Sequence[AccountRow]) -> None:
    """Upsert the changed accounts in one statement (arrays, not one round trip per row)."""
    if not rows:
        return
    await session.execute(
        _UPSERT,
        {
            "a": [r.account_id for r in rows],
            "p": [r.partition for r in rows],
            "s": [r.state for r in rows],
            "n": [r.account_name for r in rows],
            "seg": [r.segment for r in rows],
            "sc": [r.score for r in rows],
            "b": [r.band for r in rows],
            "cs": [r.computed_score for r in rows],
            "cb": [r.computed_band for r in rows],
            "o": [_json(r.override) for r in rows],
            "sig": [_json(r.signals) for r in rows],
            "rd": [r.renewal_date for r in rows],
            "m": [r.mrr for r in rows],
            "ch": [r.churned for r in rows],
            "le": [r.last_event_at for r in rows],
            "nd": [r.next_due_at for r in rows],
            "ea": [r.events_applied for r in rows],
            "la": [r.late_events for r in rows],
            "v": [r.scorecard_version for r in rows],
            "mv": [r.model_version for r in rows],
        },
    )


_RECORD_CHANGES = text("""
INSERT INTO score_changes (account_id, event_id, cause_type, occurred_at, previous_score, score,
    previous_band, band, computed_score, segment, override, factors, contributions, replayed, model_version)
SELECT a, e, c, o, ps, s, pb, b, cs, seg, ov, f::jsonb, ct::jsonb, r, mv
FROM unnest(CAST(:a AS text[]), CAST(:e AS text[]), CAST(:c AS text[]), CAST(:o AS timestamptz[]),
            CAST(:ps AS float8[]), CAST(:s AS float8[]), CAST(:pb AS text[]), CAST(:b AS text[]),
            CAST(:cs AS float8[]), CAST(:seg AS text[]), CAST(:ov AS bool[]), CAST(:f AS text[]),
            CAST(:ct AS text[]), CAST(:r AS bool[]), CAST(:mv AS int8[]))
     AS t(a, e, c, o, ps, s, pb, b, cs, seg, ov, f, ct, r, mv)
""")


async def record_changes(session: AsyncSession, changes: list[dict[str, Any]]) -> None:
    """Insert history rows in one statement (arrays, not one bind list per row)."""
    if not changes:
        return
    columns = {"a": "account_id", "e": "event_id", "c": "cause_type", "o": "occurred_at",
               "ps": "previous_score", "s": "score", "pb": "previous_band", "b": "band",
               "cs": "computed_score", "seg": "segment", "ov": "override", "r": "replayed",
               "mv": "model_version"}
    values: dict[str, Any] = {k: [change[c] for change in changes] for k, c in columns.items()}
    values["f"] = [orjson.dumps(change["factors"]).decode() for change in changes]
    values["ct"] = [orjson.dumps(change["contributions"]).decode() for change in changes]
    await session.execute(_RECORD_CHANGES, values)


async def record_override(session: AsyncSession, row: dict[str, Any]) -> None:
    await session.execute(insert(health_overrides).values(row))


# --- the API's side ---------------------------------------------------------------------------


async def read_account(conn: AsyncConnection, account_id: str) -> dict[str, Any] | None:
    row = (
        (await conn.execute(select(account_health).where(account_health.c.account_id == account_id)))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


async def score_as_of(conn: AsyncConnection, account_id: str, moment: datetime) -> tuple[float, str] | None:
    """The shown score and band at `moment` of event time: the last change at or before it."""
    row = (
        await conn.execute(
            select(score_changes.c.score, score_changes.c.band)
            .where(score_changes.c.account_id == account_id, score_changes.c.occurred_at <= moment)
            .order_by(score_changes.c.occurred_at.desc(), score_changes.c.id.desc())
            .limit(1)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def history_page(
    conn: AsyncConnection, account_id: str, before_id: int | None, limit: int
) -> list[dict[str, Any]]:
    query = select(score_changes).where(score_changes.c.account_id == account_id)
    if before_id is not None:
        query = query.where(score_changes.c.id < before_id)
    rows = await conn.execute(query.order_by(score_changes.c.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings().all()]


async def override_audit(conn: AsyncConnection, account_id: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(health_overrides)
        .where(health_overrides.c.account_id == account_id)
        .order_by(health_overrides.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in rows.mappings().all()]


_RISK_ORDER = (account_health.c.score.asc().nulls_last(), account_health.c.account_id.asc())


async def accounts_page(
    conn: AsyncConnection,
    *,
    band: str | None,
    segment: str | None,
    after: tuple[float, str] | None,
    limit: int,
    include_churned: bool,
    account_ids: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Scored accounts, riskiest (lowest shown score) first, keyset-paginated; only `account_ids`
    when given (a CSM's book)."""
    query = select(
        account_health.c.account_id,
        account_health.c.account_name,
        account_health.c.segment,
        account_health.c.score,
        account_health.c.band,
        account_health.c.computed_score,
        account_health.c.override,
        account_health.c.renewal_date,
        account_health.c.mrr,
        account_health.c.signals,
        account_health.c.last_event_at,
        account_health.c.churned,
    ).where(account_health.c.score.is_not(None))
    if band is not None:
        query = query.where(account_health.c.band == band)
    if segment is not None:
        query = query.where(account_health.c.segment == segment)
    if account_ids:
        query = query.where(account_health.c.account_id.in_(account_ids))
    if not include_churned:
        query = query.where(account_health.c.churned.is_(False))
    if after is not None:
        score, account_id = after
        query = query.where(
            or_(
                account_health.c.score > score,
                and_(account_health.c.score == score, account_health.c.account_id > account_id),
            )
        )
    rows = await conn.execute(query.order_by(*_RISK_ORDER).limit(limit))
    return [dict(r) for r in rows.mappings().all()]


async def band_counts(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(
            account_health.c.segment,
            account_health.c.band,
            func.count().label("accounts"),
            func.coalesce(func.sum(account_health.c.mrr), 0.0).label("mrr"),
        )
        .where(account_health.c.score.is_not(None), account_health.c.churned.is_(False))
        .group_by(account_health.c.segment, account_health.c.band)
    )
    return [dict(r) for r in rows.mappings().all()]


async def renewals_not_green(
    conn: AsyncConnection, start: date, end: date, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(
            account_health.c.account_id,
            account_health.c.account_name,
            account_health.c.segment,
            account_health.c.score,
            account_health.c.band,
            account_health.c.renewal_date,
            account_health.c.mrr,
            account_health.c.signals,
        )
        .where(
            account_health.c.renewal_date >= start,
            account_health.c.renewal_date <= end,
            account_health.c.band != "green",
            account_health.c.churned.is_(False),
        )
        .order_by(account_health.c.renewal_date, account_health.c.score, account_health.c.account_id)
        .limit(limit)
    )
    return [dict(r) for r in rows.mappings().all()]


async def score_histogram(conn: AsyncConnection, bucket: int) -> list[dict[str, Any]]:
    floor = (func.least(func.floor(account_health.c.score / bucket), 100 // bucket - 1) * bucket).label(
        "from_score"
    )
    rows = await conn.execute(
        select(floor, func.count().label("accounts"))
        .where(account_health.c.score.is_not(None), account_health.c.churned.is_(False))
        .group_by(floor)
        .order_by(floor)
    )
    return [{"from_score": int(r.from_score), "accounts": r.accounts} for r in rows]
