"""Feedback on alerts (useful or not), and its summary.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.alerts.store.tables import Row, alert_feedback


async def upsert_feedback(
    session: AsyncSession,
    alert_id: int,
    actor: str,
    signal_type: str,
    useful: bool,
    comment: str | None,
    now: datetime,
) -> None:
    """One verdict per person per alert: clicking twice, or changing one's mind, counts once."""
    statement = insert(alert_feedback).values(
        alert_id=alert_id, actor=actor, signal_type=signal_type, useful=useful, comment=comment, at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["alert_id", "actor"],
            set_={
                "useful": statement.excluded.useful,
                "comment": statement.excluded.comment,
                "at": statement.excluded.at,
            },
        )
    )


async def feedback_summary(conn: AsyncSession | AsyncConnection) -> list[Row]:
    """Per signal type: verdicts given and how many said "not useful"."""
    rows = await conn.execute(
        select(
            alert_feedback.c.signal_type,
            func.count().label("verdicts"),
            func.sum(case((alert_feedback.c.useful.is_(False), 1), else_=0)).label("not_useful"),
        )
        .group_by(alert_feedback.c.signal_type)
        .order_by(alert_feedback.c.signal_type)
    )
    return [
        {"signal_type": r.signal_type, "verdicts": int(r.verdicts), "not_useful": int(r.not_useful)}
        for r in rows
    ]
