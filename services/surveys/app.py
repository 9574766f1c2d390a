"""The surveys service's application: wiring settings, database, Kafka and routes.

Surveys consumes nothing; it is ready when PostgreSQL answers and the producer is connected.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.surveys.api import SurveysApi, build_router
from shared.db import create_engine, is_reachable
from shared.http import create_app as create_base_app
from shared.publisher import EventPublisher
from shared.service import prepare_infrastructure
from shared.settings import Settings
from shared.write_keys import seed_key

SERVICE = "surveys"


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings)
    publisher = EventPublisher(settings, SERVICE)
    api = SurveysApi(settings, engine, publisher)

    async def database_ready() -> bool:
        return await is_reachable(engine)

    async def kafka_ready() -> bool:
        return publisher.connected

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        topics_task = await prepare_infrastructure(settings)
        if settings.bootstrap_write_key is not None:
            await seed_key(engine, settings.bootstrap_write_key.get_secret_value(),
                           settings.bootstrap_write_key_source)
        await publisher.start()
        try:
            yield
        finally:
            if topics_task is not None:
                topics_task.cancel()
            await publisher.stop()
            await engine.dispose()

    app = create_base_app(
        SERVICE,
        "Churnwatch surveys",
        checks=[("database", database_ready), ("kafka", kafka_ready)],
        lifespan=lifespan,
    )
    app.include_router(build_router(api))
    return app
