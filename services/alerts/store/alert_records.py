"""Alerts and their reasons: the one open alert per account and kind, its actions, and the
conditions the scheduler's time-based passes select on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.alerts.store.tables import Row, alert_actions, alert_reasons, alerts


async def lock_open_alert(session: AsyncSession, account_id: str, kind: str) -> Row | None:
    """The account's open (not resolved) alert of this kind (risk or expansion): there is at
    most one, its episode."""
    row = (
        (
            await session.execute(
                select(alerts)
                .where(
                    and_(
                        alerts.c.account_id == account_id,
                        alerts.c.kind == kind,
                        alerts.c.state != "resolved",
                    )
                )
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def lock_last_resolved(session: AsyncSession, account_id: str, kind: str) -> Row | None:
    row = (
        (
            await session.execute(
                select(alerts)
                .where(
                    and_(
                        alerts.c.account_id == account_id,
                        alerts.c.kind == kind,
                        alerts.c.state == "resolved",
                    )
                )
                .order_by(alerts.c.resolved_at.desc().nulls_last(), alerts.c.id.desc())
                .limit(1)
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def load_reasons(session: AsyncSession | AsyncConnection, alert_id: int) -> list[Row]:
    rows = (
        (
            await session.execute(
                select(alert_reasons).where(alert_reasons.c.alert_id == alert_id).order_by(alert_reasons.c.id)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def save_reason(session: AsyncSession, values: Row) -> None:
    """Insert the alert's reason of this signal type, or replace what it holds."""
    statement = insert(alert_reasons).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            constraint="uq_alert_reason",
            set_={k: statement.excluded[k] for k in values if k not in ("alert_id", "signal_type")},
        )
    )


async def update_reason(session: AsyncSession, reason_id: int, **values: Any) -> None:
    await session.execute(update(alert_reasons).where(alert_reasons.c.id == reason_id).values(**values))


async def clear_reasons(
    session: AsyncSession, alert_id: int, now: datetime, signal_type: str | None = None
) -> None:
    """Mark the alert's active reasons (or the one of `signal_type`) cleared."""
    condition = and_(alert_reasons.c.alert_id == alert_id, alert_reasons.c.state == "active")
    if signal_type is not None:
        condition = and_(condition, alert_reasons.c.signal_type == signal_type)
    await session.execute(
        update(alert_reasons)
        .where(condition)
        .values(state="cleared", cleared_at=now, clearing_since=None, updated_at=now)
    )


async def lock_alert(session: AsyncSession, alert_id: int) -> Row | None:
    row = (
        (await session.execute(select(alerts).where(alerts.c.id == alert_id).with_for_update()))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def insert_alert(session: AsyncSession, values: Row) -> int:
    return int((await session.execute(insert(alerts).values(**values).returning(alerts.c.id))).scalar_one())


async def update_alert(session: AsyncSession, alert_id: int, **values: Any) -> None:
    await session.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


async def insert_action(
    session: AsyncSession,
    alert_id: int,
    action: str,
    actor: str,
    via: str,
    at: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    await session.execute(
        insert(alert_actions).values(
            alert_id=alert_id, action=action, actor=actor, via=via, details=dict(details or {}), at=at
        )
    )


async def latest_action(session: AsyncSession, alert_id: int) -> Row | None:
    """The last thing a person did to the alert (for 'who did what and when' on the message)."""
    row = (
        (
            await session.execute(
                select(alert_actions.c.action, alert_actions.c.actor, alert_actions.c.via,
                       alert_actions.c.details, alert_actions.c.at)
                .where(alert_actions.c.alert_id == alert_id)
                .order_by(alert_actions.c.id.desc())
                .limit(1)
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def load_alert_rows(session: AsyncSession, alert_ids: Iterable[int]) -> dict[int, Row]:
    wanted = sorted(set(alert_ids))
    if not wanted:
        return {}
    rows = (await session.execute(select(alerts).where(alerts.c.id.in_(wanted)))).mappings().all()
    return {r["id"]: dict(r) for r in rows}


async def lock_due_alerts(session: AsyncSession, condition: Any, limit: int = 100) -> list[Row]:
    rows = (
        (
            await session.execute(
                select(alerts)
                .where(and_(alerts.c.state != "resolved", condition))
                .order_by(alerts.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def snooze_over(now: datetime) -> Any:
    return and_(alerts.c.state == "snoozed", alerts.c.snoozed_until <= now)


def clear_over(deadline: datetime) -> Any:
    """Alerts whose clear timer ran out, or that have an active reason whose timer did."""
    return or_(
        and_(alerts.c.clearing_since.is_not(None), alerts.c.clearing_since <= deadline),
        _reason_clear_over(deadline),
    )


def _reason_clear_over(deadline: datetime) -> Any:
    return alerts.c.id.in_(
        select(alert_reasons.c.alert_id).where(
            and_(
                alert_reasons.c.state == "active",
                alert_reasons.c.clearing_since.is_not(None),
                alert_reasons.c.clearing_since <= deadline,
            )
        )
    )


def escalation_over(now: datetime) -> Any:
    return and_(alerts.c.state == "open", alerts.c.escalated_at.is_(None), alerts.c.escalate_at <= now)
