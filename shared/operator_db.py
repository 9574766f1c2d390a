"""What operator commands (`churnwatch tokens`, `churnwatch users`) share: the configured
database, migrated first (so a fresh database works), for one job."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
