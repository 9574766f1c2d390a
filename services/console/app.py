"""The console's application: the pages over its own database (users, sessions) and the other
services' APIs; the ops endpoints like every service. No Kafka: it only reads and signs in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from services.console.pages import Console, build_pages_router
from services.console.upstream import Upstream
from shared.db import create_engine, is_reachable
from shared.http import create_app as create_http_app
from shared.outage import outage_error
from shared.schema_version import check_schema_at_start
from shared.settings import Settings

SERVICE = "console"
STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings) -> FastAPI:
    engine = create_engine(settings)
    upstream = Upstream(settings)
    console = Console(settings, engine, upstream)

    async def database_ready() -> bool:
        return await is_reachable(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await check_schema_at_start(engine)
            yield
        finally:
            await upstream.close()
            await engine.dispose()

    app = create_http_app(SERVICE, "Churnwatch console", checks=[("database", database_ready)],
                          outage=outage_error, lifespan=lifespan, docs_url=None, redoc_url=None,
                          openapi_url=None)
    app.include_router(build_pages_router(console))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
