"""A PostgreSQL outage answered as what it is: 503, retry later (Segment clients retry 5xx
with back-off), with the usual `{code, message}` body, never an anonymous 500.

Every ingest request needs the database (the write key, its rate, the message ids it claims),
so while PostgreSQL is unreachable nothing can be accepted. Only errors that mean "cannot reach
the database" are translated; any other error is a bug and still surfaces as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError

from shared.http import ApiError

RETRY_AFTER_SECONDS = "5"
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable: asyncpg connects and reads with plain sockets
    TimeoutError,
    asyncpg.PostgresConnectionError,  # the connection broke mid-statement
    asyncpg.InterfaceError,  # the connection is closed
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, restarting, in recovery
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections
)


def database_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what it wraps: SQLAlchemy wraps the driver's errors) means the
    database cannot be reached, rather than a statement being wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNREACHABLE):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        wrapped = current.orig if isinstance(current, DBAPIError) else None
        current = wrapped if isinstance(wrapped, BaseException) else current.__cause__
    return False


@contextmanager
def database_outage_as_503() -> Iterator[None]:
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        if not database_unreachable(exc):
            raise
        raise ApiError(503, "database_unavailable",
                       "the database is unreachable; nothing was accepted, retry later",
                       headers={"Retry-After": RETRY_AFTER_SECONDS}) from exc
