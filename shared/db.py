"""PostgreSQL access: one async engine per process, and migrations applied on start.

Migrations live in shared/migrations/versions. 0001 and 0002 are the common trunk; after
them each service grows its own branch of revisions (`0003_ingest`, `0003_scoring`, ...,
each revising its own service's previous one), so services can change their tables
independently. `upgrade heads` applies every branch.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from shared.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# A config attribute: this run only upgrades, so env.py need not import every service's tables
# (the metadata autogenerate and `alembic check` compare with) when a service starts.
UPGRADE_ONLY = "churnwatch.upgrade_only"


def create_engine(settings: Settings) -> AsyncEngine:
    return create_async_engine(
        settings.database_url,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
    )


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url)
    return config


async def migrate(settings: Settings) -> None:
    """Bring the schema to the newest revision of every branch. Safe to run from several services at once:
    env.py takes an advisory lock, so only one applies and the others wait and find nothing to do.
    """
    config = alembic_config(settings.database_url)
    config.attributes[UPGRADE_ONLY] = True
    # alembic's env.py runs its own event loop, so it must not run on ours.
    await asyncio.to_thread(command.upgrade, config, "heads")


async def is_reachable(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
