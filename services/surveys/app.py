"""The surveys service's application: response routes over the common service shell.

Surveys consumes nothing; it is ready when PostgreSQL answers and the producer is connected.
"""

from __future__ import annotations

from fastapi import FastAPI

from services.surveys.api import SurveysApi, build_router
from shared.service import ServiceParts, Wiring, service_app
from shared.settings import Settings

SERVICE = "surveys"


def _wire(parts: ServiceParts) -> Wiring:
    api = SurveysApi(parts.settings, parts.engine, parts.publisher)
    return Wiring(routers=[build_router(api)], seeds_write_key=True)


def create_app(settings: Settings) -> FastAPI:
    return service_app(SERVICE, "Churnwatch surveys", settings, _wire)
