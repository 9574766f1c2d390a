"""What operator commands (`churnwatch tokens`, `users`, `write-keys`, ...) share: the configured
database, its schema checked first (they never migrate: `churnwatch migrate` does), for one job;
and how they print a time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.schema_version import require_current_schema
from shared.settings import Settings


async def with_migrated_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[int]]) -> int:
    """Run `work` on the configured database; SchemaNotCurrent (which `churnwatch` prints, with the
    command to run) if it is not migrated to this version."""
    engine = create_engine(settings)
    try:
        await require_current_schema(engine)
        return await work(engine)
    finally:
        await engine.dispose()


async def require_migrated(settings: Settings) -> None:
    """SchemaNotCurrent unless the configured database is migrated to this version."""
    engine = create_engine(settings)
    try:
        await require_current_schema(engine)
    finally:
        await engine.dispose()


def shown_time(moment: datetime | None) -> str:
    """A time in an operator listing: ISO 8601 to the second, '-' for none."""
    return moment.isoformat(timespec="seconds") if moment is not None else "-"
