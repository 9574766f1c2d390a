"""A dependency outage answered as what it is: 503 with `Retry-After` (clients retry 5xx with
back-off) and the usual `{code, message}` body, never an anonymous 500 or a plain-text page.

One implementation for every service: the app shell (`shared.http.create_app`) renders any
exception that escapes a route through `outage_error`, so a route needs no handling of its
own. Only errors that mean "cannot reach PostgreSQL" or "Kafka did not acknowledge" are
outages; any other error is a bug and answers 500 `internal_error` (still JSON).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.http import ApiError
from shared.publisher import Overloaded, PublishFailed

RETRY_AFTER_SECONDS = "5"
_UNREACHABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable: asyncpg connects and reads with plain sockets
    TimeoutError,
    PoolTimeoutError,  # SQLAlchemy's pool found no connection in time
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


def outage_error(exc: BaseException) -> ApiError | None:
    """The 503 for an exception that means a dependency is out; None for any other error."""
    if isinstance(exc, Overloaded):
        return ApiError(503, "overloaded", f"{exc}; nothing was accepted, retry shortly",
                        headers={"Retry-After": "1"})
    if isinstance(exc, PublishFailed):
        return ApiError(503, "kafka_unavailable", f"{exc}; retry later",
                        headers={"Retry-After": RETRY_AFTER_SECONDS})
    if database_unreachable(exc):
        return ApiError(503, "database_unavailable",
                        "the database is unreachable; nothing was accepted, retry later",
                        headers={"Retry-After": RETRY_AFTER_SECONDS})
    return None


@contextmanager
def database_outage_as_503() -> Iterator[None]:
    """`outage_error` inside a route, for a route that must see the 503 as an `ApiError`
    (ingest counts its rejections by code); the app shell does the same for every route."""
    try:
        yield
    except ApiError:
        raise
    except Exception as exc:
        error = outage_error(exc)
        if error is None:
            raise
        raise error from exc
