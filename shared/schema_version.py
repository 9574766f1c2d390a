"""Is the database's schema the one this code was built for? Checked by every service at start.

Migrations are a step of their own (`churnwatch migrate`: the compose `migrate` service, the
Kubernetes migration Job, `make run` before the services). A service never migrates: it compares
the revisions recorded in `alembic_version` with the heads of the migrations it ships, and
refuses to start, naming the command to run, when they differ.
"""

from __future__ import annotations

import structlog
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import alembic_config

MIGRATE_COMMAND = "churnwatch migrate"

log = structlog.get_logger(__name__)


class SchemaNotCurrent(RuntimeError):
    """The database's schema is older than this code, unknown to it, or not there at all."""


def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(""))


def shipped_heads() -> frozenset[str]:
    """The newest revision of every branch of the migrations this code ships."""
    return frozenset(_script().get_heads())


def known_revisions() -> frozenset[str]:
    return frozenset(revision.revision for revision in _script().walk_revisions())


def mismatch(applied: frozenset[str], heads: frozenset[str], known: frozenset[str]) -> str | None:
    """Why a database at `applied` revisions cannot serve code whose migrations end at `heads`;
    None when it can."""
    if applied == heads:
        return None
    if not applied:
        return (f"the database has no Churnwatch schema (it was never migrated): run `{MIGRATE_COMMAND}` "
                "with the same CHURNWATCH_DATABASE_URL, then start the service again")
    unknown = sorted(applied - known)
    if unknown:
        return (f"the database's schema is at revisions this code does not know ({', '.join(unknown)}): "
                "it was migrated by a newer Churnwatch. Run that version, or downgrade the database "
                "with that version's migrations; this one cannot serve it")
    missing = sorted(heads - applied)
    return (f"the database's schema is older than this code (missing {', '.join(missing)}): "
            f"run `{MIGRATE_COMMAND}` with the same CHURNWATCH_DATABASE_URL, then start the service again")


def _applied(connection: Connection) -> frozenset[str]:
    return frozenset(MigrationContext.configure(connection).get_current_heads())


async def applied_revisions(engine: AsyncEngine) -> frozenset[str]:
    async with engine.connect() as connection:
        return await connection.run_sync(_applied)


async def require_current_schema(engine: AsyncEngine) -> None:
    """Raise SchemaNotCurrent, with what to do, unless the database is at this code's heads."""
    problem = mismatch(await applied_revisions(engine), shipped_heads(), known_revisions())
    if problem is not None:
        raise SchemaNotCurrent(problem)


async def check_schema_at_start(engine: AsyncEngine) -> None:
    """A service's first step: refuse (logged, then raised so the process exits) a schema it cannot serve."""
    try:
        await require_current_schema(engine)
    except SchemaNotCurrent as problem:
        log.error("schema_not_current", problem=str(problem))
        raise
