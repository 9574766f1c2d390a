"""The scoring service's application: the consumer that keeps health scores, and the API."""

from __future__ import annotations

from fastapi import FastAPI

from services.scoring.api import build_router
from services.scoring.consumer import ScoringHandler
from shared.service import ServiceParts, Wiring, service_app
from shared.settings import Settings
from shared.topics import Topics

SERVICE = "scoring"
GROUP_ID = "churnwatch-scoring"


def _wire(parts: ServiceParts) -> Wiring:
    topics = Topics.from_settings(parts.settings)
    consumer = parts.consumer(
        GROUP_ID, [topics.usage, topics.traits, topics.tickets, topics.survey_responses],
        ScoringHandler())
    return Wiring(routers=[build_router(parts.engine)], loops=[consumer],
                  kafka_ready=lambda: consumer.running)


def create_app(settings: Settings) -> FastAPI:
    return service_app(SERVICE, "Churnwatch scoring", settings, _wire)
