"""The scoring service's application: the consumer that keeps health scores, and the API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.scoring.api import build_router
from services.scoring.consumer import ScoringHandler
from shared.consumer import DurableConsumer
from shared.db import create_engine, is_reachable, session_factory
from shared.http import create_app as create_base_app
from shared.publisher import EventPublisher
from shared.service import prepare_infrastructure, spawn
from shared.settings import Settings
from shared.topics import Topics

SERVICE = "scoring"
GROUP_ID = "churnwatch-scoring"


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings)
    sessions = session_factory(engine)
    topics = Topics.from_settings(settings)
    publisher = EventPublisher(settings, SERVICE)
    consumer = DurableConsumer(
        settings=settings,
        service=SERVICE,
        group_id=GROUP_ID,
        topics=[topics.usage, topics.traits, topics.tickets, topics.survey_responses],
        sessions=sessions,
        publisher=publisher,
        handler=ScoringHandler(),
    )

    async def database_ready() -> bool:
        return await is_reachable(engine)

    async def kafka_ready() -> bool:
        return consumer.running and publisher.connected

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        topics_task = await prepare_infrastructure(settings)
        await publisher.start()
        consumer_task = spawn(consumer.run(), "scoring-consumer")
        try:
            yield
        finally:
            consumer.stop()
            await consumer_task
            if topics_task is not None:
                topics_task.cancel()
            await publisher.stop()
            await engine.dispose()

    app = create_base_app(
        SERVICE,
        "Churnwatch scoring",
        checks=[("database", database_ready), ("kafka", kafka_ready)],
        lifespan=lifespan,
    )
    app.include_router(build_router(engine))
    return app
