"""Churn-risk persistence: weekly feature snapshots, outcomes, and the registry of fitted models.

Snapshots and outcomes are written by live scoring in its batch transaction (with the account
state and the offsets), and by a replay in its own: keyed by (account, moment) and written as
upserts, so a replay rewrites them in place. Nothing is deleted by a replay: the moments
before what Kafka still retains keep the snapshots taken when they were live.
The model registry is written by `churnwatch calibrate` and `churnwatch model`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    PrimaryKeyConstraint,
    Table,
    Text,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.scoring.model import moment
from services.scoring.risk.features import FEATURES_VERSION
from services.scoring.risk.weekly import TakenSnapshot
from services.scoring.store import metadata

risk_snapshots = Table(
    "risk_snapshots",
    metadata,
    Column("account_id", Text, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("features_version", Integer, nullable=False),
    Column("features", JSONB, nullable=False),
    Column("scorecard_score", Float),
    Column("activity_28d", Float, nullable=False),
    PrimaryKeyConstraint("account_id", "at"),
    Index("risk_snapshots_at", "at"),
)
risk_outcomes = Table(
    "risk_outcomes",
    metadata,
    Column("account_id", Text, nullable=False),
    Column("kind", Text, nullable=False),  # "churned" or "renewed"
    Column("at", DateTime(timezone=True), nullable=False),
    PrimaryKeyConstraint("account_id", "kind", "at"),
)
risk_models = Table(
    "risk_models",
    metadata,
    Column("version", BigInteger, Identity(), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("fitted_by", Text, nullable=False),
    Column("features_version", Integer, nullable=False),
    Column("columns", JSONB, nullable=False),
    Column("kind", Text, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("horizon_days", Float, nullable=False),
    Column("fitted_until", DateTime(timezone=True), nullable=False),
    Column("metrics", JSONB, nullable=False),
    Column("artifact", LargeBinary, nullable=False),
    Column("sha256", Text, nullable=False),
    Column("activated_at", DateTime(timezone=True)),
    Column("activated_by", Text),
)
risk_model_activations = Table(
    "risk_model_activations",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("version", BigInteger, ForeignKey("risk_models.version"), nullable=False),
    Column("activated_at", DateTime(timezone=True), nullable=False),
    Column("activated_by", Text, nullable=False),
    Column("action", Text, nullable=False),  # "activate" or "rollback"
)


@dataclass
class RiskRows:
    """What a batch's engines observed for churn risk, to write in the batch's transaction."""

    snapshots: dict[tuple[str, float], TakenSnapshot]
    outcomes: set[tuple[str, str, float]]

    @classmethod
    def empty(cls) -> RiskRows:
        return cls({}, set())

    def add(
        self, account_id: str, snapshots: Sequence[TakenSnapshot], outcomes: Sequence[tuple[str, float]]
    ) -> None:
        for taken in snapshots:
            self.snapshots[(account_id, taken.at)] = taken  # a re-take replaces
        self.outcomes.update((account_id, kind, at) for kind, at in outcomes)


_UPSERT_SNAPSHOTS = text("""
INSERT INTO risk_snapshots (account_id, at, features_version, features, scorecard_score, activity_28d)
SELECT a, t, v, f::jsonb, s, n
FROM unnest(CAST(:a AS text[]), CAST(:t AS timestamptz[]), CAST(:v AS int[]), CAST(:f AS text[]),
            CAST(:s AS float8[]), CAST(:n AS float8[])) AS u(a, t, v, f, s, n)
ON CONFLICT (account_id, at) DO UPDATE SET features_version = excluded.features_version,
    features = excluded.features, scorecard_score = excluded.scorecard_score,
    activity_28d = excluded.activity_28d
""")
_INSERT_OUTCOMES = text("""
INSERT INTO risk_outcomes (account_id, kind, at)
SELECT a, k, t FROM unnest(CAST(:a AS text[]), CAST(:k AS text[]), CAST(:t AS timestamptz[])) AS u(a, k, t)
ON CONFLICT DO NOTHING
""")


async def save(session: AsyncSession, rows: RiskRows) -> None:
    if rows.snapshots:
        keys = sorted(rows.snapshots)
        taken = [rows.snapshots[k] for k in keys]
        await session.execute(_UPSERT_SNAPSHOTS, {
            "a": [a for a, _ in keys],
            "t": [moment(at) for _, at in keys],
            "v": [FEATURES_VERSION] * len(keys),
            "f": [orjson.dumps(s.features_json()).decode() for s in taken],
            "s": [s.scorecard_score for s in taken],
            "n": [s.activity_28d for s in taken],
        })
    if rows.outcomes:
        outcomes = sorted(rows.outcomes)
        await session.execute(_INSERT_OUTCOMES, {
            "a": [a for a, _, _ in outcomes],
            "k": [k for _, k, _ in outcomes],
            "t": [moment(at) for _, _, at in outcomes],
        })


# --- calibrate's side -----------------------------------------------------------------------


@dataclass(frozen=True)
class StoredSnapshot:
    account_id: str
    at: float
    features_version: int
    features: dict[str, Any]
    scorecard_score: float | None
    activity_28d: float


async def read_snapshots(conn: AsyncConnection, until: datetime | None) -> list[StoredSnapshot]:
    query = select(risk_snapshots).order_by(risk_snapshots.c.at, risk_snapshots.c.account_id)
    if until is not None:
        query = query.where(risk_snapshots.c.at <= until)
    rows = (await conn.execute(query)).mappings().all()
    return [
        StoredSnapshot(r["account_id"], r["at"].timestamp(), r["features_version"], r["features"],
                       r["scorecard_score"], r["activity_28d"])
        for r in rows
    ]


async def read_outcomes(conn: AsyncConnection, until: datetime | None) -> list[tuple[str, str, float]]:
    query = select(risk_outcomes.c.account_id, risk_outcomes.c.kind, risk_outcomes.c.at)
    if until is not None:
        query = query.where(risk_outcomes.c.at <= until)
    return [(a, k, t.timestamp()) for a, k, t in (await conn.execute(query)).all()]


async def observed_until(conn: AsyncConnection) -> float | None:
    """How far event time has reached: the latest partition watermark of live scoring."""
    value = (await conn.execute(text("SELECT max(max_event_at) FROM scoring_partitions"))).scalar()
    return float(value) if value is not None else None


# --- the registry -----------------------------------------------------------------------------


async def add_model(conn: AsyncConnection, row: dict[str, Any]) -> int:
    result = await conn.execute(risk_models.insert().values(row).returning(risk_models.c.version))
    return int(result.scalar_one())


async def activate(conn: AsyncConnection, version: int, by: str, at: datetime, action: str) -> None:
    await conn.execute(
        update(risk_models).where(risk_models.c.version == version).values(activated_at=at, activated_by=by)
    )
    await conn.execute(
        risk_model_activations.insert().values(
            version=version, activated_at=at, activated_by=by, action=action
        )
    )


async def lock_registry(conn: AsyncConnection) -> None:
    """One activation at a time: a rollback reads the history it then extends."""
    await conn.execute(text("LOCK TABLE risk_model_activations IN EXCLUSIVE MODE"))


async def activations(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(select(risk_model_activations).order_by(risk_model_activations.c.id))
    return [dict(r) for r in rows.mappings().all()]


async def models(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(*(c for c in risk_models.c if c.name != "artifact")).order_by(risk_models.c.version)
    )
    return [dict(r) for r in rows.mappings().all()]


async def model(conn: AsyncConnection, version: int) -> dict[str, Any] | None:
    row = (await conn.execute(select(risk_models).where(risk_models.c.version == version))).mappings().first()
    return dict(row) if row is not None else None


async def active_version(conn: AsyncConnection) -> int | None:
    """The version of the latest activation (activate or rollback), None if none ever."""
    row = (
        await conn.execute(
            select(risk_model_activations.c.version).order_by(risk_model_activations.c.id.desc()).limit(1)
        )
    ).first()
    return int(row[0]) if row is not None else None
