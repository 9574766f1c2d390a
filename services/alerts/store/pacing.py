"""Pacing: when each recipient may next be sent a message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.store.tables import alert_pacing


async def lock_pacing(session: AsyncSession, keys: Iterable[str], now: datetime) -> dict[str, datetime]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    await session.execute(
        insert(alert_pacing)
        .values([{"pacing_key": k, "next_free_at": now} for k in wanted])
        .on_conflict_do_nothing(index_elements=["pacing_key"])
    )
    rows = await session.execute(
        select(alert_pacing)
        .where(alert_pacing.c.pacing_key.in_(wanted))
        .order_by(alert_pacing.c.pacing_key)
        .with_for_update()
    )
    return {r.pacing_key: r.next_free_at for r in rows}


async def save_pacing(session: AsyncSession, next_free: Mapping[str, datetime]) -> None:
    for key, at in next_free.items():
        await session.execute(
            update(alert_pacing).where(alert_pacing.c.pacing_key == key).values(next_free_at=at)
        )


async def push_pacing(session: AsyncSession, key: str, not_before: datetime) -> None:
    """A 429 for this webhook or channel: nobody sends to it before `not_before`."""
    statement = insert(alert_pacing).values(pacing_key=key, next_free_at=not_before)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["pacing_key"],
            set_={
                "next_free_at": func.greatest(alert_pacing.c.next_free_at, statement.excluded.next_free_at)
            },
        )
    )
