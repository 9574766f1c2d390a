"""The alerts service's application: one consumer (traits + risk signals), one dispatcher, routes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.alerts.api import build_router
from services.alerts.consumer import AlertsHandler
from services.alerts.dispatcher import Dispatcher
from shared.consumer import DurableConsumer
from shared.db import create_engine, is_reachable, session_factory
from shared.http import create_app as create_base_app
from shared.publisher import EventPublisher
from shared.service import prepare_infrastructure, spawn
from shared.settings import Settings
from shared.topics import Topics

SERVICE = "alerts"
GROUP_ID = "churnwatch-alerts"


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings)
    sessions = session_factory(engine)
    topics = Topics.from_settings(settings)
    publisher = EventPublisher(settings, SERVICE)  # for the dead-letter topic
    dispatcher = Dispatcher(settings, sessions)
    consumer = DurableConsumer(
        settings=settings,
        service=SERVICE,
        group_id=GROUP_ID,
        topics=[topics.traits, topics.risk_signals],
        sessions=sessions,
        publisher=publisher,
        handler=AlertsHandler(settings, on_new_deliveries=dispatcher.wake),
    )

    async def database_ready() -> bool:
        return await is_reachable(engine)

    async def kafka_ready() -> bool:
        return consumer.running

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        topics_task = await prepare_infrastructure(settings)
        await publisher.start()
        await dispatcher.start()
        consumer_task = spawn(consumer.run(), "alerts-consumer")
        dispatcher_task = spawn(dispatcher.run(), "alerts-dispatcher")
        try:
            yield
        finally:
            consumer.stop()
            dispatcher.stop()
            await asyncio.gather(consumer_task, dispatcher_task, return_exceptions=True)
            if topics_task is not None:
                topics_task.cancel()
            await dispatcher.close()
            await publisher.stop()
            await engine.dispose()

    app = create_base_app(
        SERVICE,
        "Churnwatch alerts",
        checks=[("database", database_ready), ("kafka", kafka_ready)],
        lifespan=lifespan,
    )
    app.include_router(build_router(engine))
    return app
