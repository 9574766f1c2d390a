"""Alembic environment: runs migrations over the service's own async driver."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db import UPGRADE_ONLY
from shared.settings import get_settings

# Any constant works; it only has to be the same in every process that migrates.
MIGRATION_LOCK_ID = 0x63687572


def _target_metadata() -> list[MetaData] | None:
    """What autogenerate and `alembic check` compare the database with: every table, once."""
    if context.config.attributes.get(UPGRADE_ONLY):
        return None
    from services.schema import METADATA  # every service's tables: imported only to compare

    return list(METADATA)


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=_target_metadata())
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        context.run_migrations()


async def _run_online() -> None:
    # Services pass their URL in; alembic's own command line takes the services' setting.
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().database_url
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_run_online())
