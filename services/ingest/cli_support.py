"""What ingest's operator commands share: the configured database, migrated, for one job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine, migrate
from shared.settings import Settings


async def with_migrated_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[int]]) -> int:
    """Run `work` on the settings' database, migrated first (so a fresh database works)."""
    await migrate(settings)
    engine = create_engine(settings)
    try:
        return await work(engine)
    finally:
        await engine.dispose()
