"""Running a service: uvicorn in the foreground, background loops beside it, clean shutdown.

uvicorn turns SIGTERM/SIGINT into a graceful stop: it stops accepting connections, lets
requests in flight finish, then runs the app's lifespan exit, where each service stops its
consumer loops (which finish and commit their batch in flight) before closing Kafka and
the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI

from shared.db import migrate
from shared.logging import configure_logging
from shared.settings import Settings, get_settings
from shared.topics import ensure_topics

log = structlog.get_logger(__name__)


async def prepare_infrastructure(settings: Settings) -> asyncio.Task[None] | None:
    """Schema migrations, then topics. Both idempotent, so every service runs them at start.

    The database must be there (migrations block). Kafka may not be yet (compose starts
    everything at once, or the broker is down): then topics are created in the background
    as soon as it answers, and the returned task (cancel it on shutdown) keeps trying, while
    the service starts and reports itself not ready.
    """
    await migrate(settings)
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
    delay = 1.0
    while True:
        await asyncio.sleep(delay)
        try:
            await _create_topics(settings)
            return
        except Exception as exc:
            delay = min(delay * 2, 30.0)
            log.warning("kafka_not_ready_for_topics", error=str(exc), retry_in=delay)


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
    uvicorn.Server(config).run()


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
            import os
            import signal

            os.kill(os.getpid(), signal.SIGTERM)

    task.add_done_callback(_done)
    return task
