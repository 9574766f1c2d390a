"""The signal ledger: every risk signal heard, and what it did to an alert.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.alerts.store.tables import Row, alert_signals


async def record_signal(session: AsyncSession, values: Row) -> int | None:
    """Insert an occurrence; None if its dedupe key was seen before (the same signal again)."""
    inserted = await session.execute(
        insert(alert_signals)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(alert_signals.c.id)
    )
    signal_id: int | None = inserted.scalar_one_or_none()
    return signal_id


async def set_signal_outcome(
    session: AsyncSession, signal_id: int, alert_id: int | None, outcome: str
) -> None:
    await session.execute(
        update(alert_signals)
        .where(alert_signals.c.id == signal_id)
        .values(alert_id=alert_id, outcome=outcome)
    )


async def load_signal_rows(
    session: AsyncSession | AsyncConnection, signal_ids: Iterable[int]
) -> dict[int, Row]:
    wanted = sorted(set(signal_ids))
    if not wanted:
        return {}
    rows = (
        (await session.execute(select(alert_signals).where(alert_signals.c.id.in_(wanted)))).mappings().all()
    )
    return {r["id"]: dict(r) for r in rows}
