"""Running a service: uvicorn in the foreground, background loops beside it, clean shutdown.

uvicorn turns SIGTERM/SIGINT into a graceful stop: it stops accepting connections, lets
requests in flight finish, then runs the app's lifespan exit, where each service stops its
consumer loops (which finish and commit their batch in flight) before closing Kafka and
the database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
import uvicorn
from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.api_tokens import Scope, seed_token
from shared.consumer import BatchHandler, DurableConsumer
from shared.db import create_engine, is_reachable, session_factory
from shared.http import create_app
from shared.logging import configure_logging
from shared.outage import outage_error
from shared.publisher import EventPublisher
from shared.runtime.backoff import exponential_backoff
from shared.schema_version import check_schema_at_start
from shared.settings import Settings, get_settings
from shared.topics import ensure_topics
from shared.write_keys import seed_key

STARTUP_FAILED = 3  # as `uvicorn` itself exits when the app does not start
BOOTSTRAP_TOKEN_NAME = "bootstrap (CHURNWATCH_BOOTSTRAP_API_TOKEN)"

log = structlog.get_logger(__name__)


async def prepare_infrastructure(settings: Settings, engine: AsyncEngine) -> asyncio.Task[None] | None:
    """The schema check, then topics (idempotent, so every service creates any that are missing).

    The database must be there and migrated (`churnwatch migrate`, a step of its own): a service
    refuses, saying what to run, a schema older or newer than its code. Kafka may not be up yet
    (compose starts everything at once, or the broker is down): then topics are created in the
    background as soon as it answers, and the returned task (cancel it on shutdown) keeps trying,
    while the service starts and reports itself not ready.
    """
    await check_schema_at_start(engine)
    try:
        await _create_topics(settings)
        return None
    except Exception as exc:
        log.warning("kafka_not_ready_for_topics", error=str(exc))
        return asyncio.create_task(_create_topics_eventually(settings), name="ensure-topics")


async def _create_topics(settings: Settings) -> None:
    created = await asyncio.wait_for(ensure_topics(settings), timeout=settings.produce_timeout_seconds)
    if created:
        log.info("topics_created", topics=created)


async def _create_topics_eventually(settings: Settings) -> None:
    retries = 0
    while True:
        await asyncio.sleep(exponential_backoff(retries, 1.0, 30.0))
        try:
            await _create_topics(settings)
            return
        except Exception as exc:
            retries += 1
            log.warning("kafka_not_ready_for_topics", error=str(exc),
                        retry_in=exponential_backoff(retries, 1.0, 30.0))


def run_service(service: str, summary: str, create_app: Callable[[Settings], FastAPI],
                argv: Sequence[str] | None = None) -> None:
    """`python -m services.<service> [--help]`: parse the command line before anything else, so
    --help prints usage and exits without reading settings, connecting or serving."""
    parser = argparse.ArgumentParser(
        prog=f"python -m services.{service}", description=summary,
        epilog=f"Configured by CHURNWATCH_* environment variables (docs/configuration.md); it listens on "
               f"CHURNWATCH_HTTP_HOST:CHURNWATCH_{service.upper()}_PORT. The database must be migrated "
               "first (`churnwatch migrate`). SIGTERM stops it gracefully.")
    parser.parse_args(argv)
    settings = get_settings()
    serve(create_app(settings), service, getattr(settings, f"{service}_port"), settings)


def serve(app: FastAPI, service: str, port: int, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    configure_logging(settings, service)
    config = uvicorn.Config(
        app,
        host=settings.http_host,
        port=port,
        log_config=None,  # keep our structured logging
        access_log=False,
        timeout_graceful_shutdown=30,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        # The lifespan refused to start (an unmigrated schema, an unreachable database): a
        # supervisor must see a failure, not a clean exit.
        sys.exit(STARTUP_FAILED)


def spawn(coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
    """A background task whose crash is logged and ends the process rather than vanish."""
    task = asyncio.create_task(coro, name=name)

    def _done(t: asyncio.Task[None]) -> None:
        if t.cancelled():
            return
        exc = t.exception()
        if exc is not None:
            log.error("background_task_crashed", task=name, error=repr(exc))
            # A consumer that stopped while the HTTP side stays up would look healthy
            # and do nothing: exit so the supervisor restarts us.
            os.kill(os.getpid(), signal.SIGTERM)

    task.add_done_callback(_done)
    return task


class BackgroundLoop(Protocol):
    """A long-running part of a service (a consumer, a dispatcher): runs until stopped."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class ServiceParts:
    """What every service holds: its settings, its database and its Kafka producer."""

    name: str
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    publisher: EventPublisher

    def consumer(self, group_id: str, topics: Sequence[str], handler: BatchHandler,
                 **options: Any) -> DurableConsumer:
        """A DurableConsumer for this service; `options` are DurableConsumer's optional ones
        (max_batch, assignors, on_assigned, on_revoked)."""
        return DurableConsumer(settings=self.settings, service=self.name, group_id=group_id,
                               topics=topics, sessions=self.sessions, publisher=self.publisher,
                               handler=handler, **options)


@dataclass
class Wiring:
    """A service's own pieces, plugged into the common lifecycle by `service_app`."""

    routers: list[APIRouter]
    loops: list[BackgroundLoop] = field(default_factory=list)
    # Kafka readiness beyond the producer (e.g. a consumer that has joined its group).
    kafka_ready: Callable[[], bool] | None = None
    seeds_write_key: bool = False
    on_start: Callable[[], Awaitable[None]] | None = None
    on_stop: Callable[[], Awaitable[None]] | None = None


def service_app(name: str, title: str, settings: Settings,
                wire: Callable[[ServiceParts], Wiring]) -> FastAPI:
    """The FastAPI app of a service: ops endpoints, readiness, and an ordered start and stop.

    Start: the schema check and topics, the bootstrap write key, the producer, then the loops.
    Stop (SIGTERM): loops finish and commit their work in flight, then Kafka and the database.
    """
    engine = create_engine(settings)
    parts = ServiceParts(name, settings, engine, session_factory(engine),
                         EventPublisher(settings, name))
    wiring = wire(parts)

    async def database_ready() -> bool:
        return await is_reachable(engine)

    async def kafka_ready() -> bool:
        extra = wiring.kafka_ready() if wiring.kafka_ready is not None else True
        return parts.publisher.connected and extra

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            topics_task = await prepare_infrastructure(settings, engine)
        except BaseException:
            await engine.dispose()
            raise
        if wiring.seeds_write_key and settings.bootstrap_write_key is not None:
            await seed_key(engine, settings.bootstrap_write_key.get_secret_value(),
                           settings.bootstrap_write_key_source)
        if settings.bootstrap_api_token is not None:
            await seed_token(engine, settings.bootstrap_api_token.get_secret_value(), BOOTSTRAP_TOKEN_NAME,
                             frozenset({Scope.ADMIN}))
        await parts.publisher.start()
        if wiring.on_start is not None:
            await wiring.on_start()
        tasks = [spawn(loop.run(), f"{name}-{type(loop).__name__}") for loop in wiring.loops]
        try:
            yield
        finally:
            for loop in wiring.loops:
                loop.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            if wiring.on_stop is not None:
                await wiring.on_stop()
            if topics_task is not None:
                topics_task.cancel()
            await parts.publisher.stop()
            await engine.dispose()

    app = create_app(name, title, checks=[("database", database_ready), ("kafka", kafka_ready)],
                     outage=outage_error, lifespan=lifespan)
    app.state.parts = parts  # what `shared.deps` hands routes (the database)
    for router in wiring.routers:
        app.include_router(router)
    return app
