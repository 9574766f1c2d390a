"""What operator commands (`churnwatch tokens`, `users`, `write-keys`, ...) share: the configured
database, migrated first (so a fresh database works), for one job; and how they print a time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, migrate
from shared.settings import Settings


async def with_migrated_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[int]]) -> int:
    await migrate(settings)
    engine = create_engine(settings)
    try:
        return await work(engine)
    finally:
        await engine.dispose()


def shown_time(moment: datetime | None) -> str:
    """A time in an operator listing: ISO 8601 to the second, '-' for none."""
    return moment.isoformat(timespec="seconds") if moment is not None else "-"
