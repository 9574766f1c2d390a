"""The alerts service's application: one consumer (traits + risk signals), one dispatcher, routes."""

from __future__ import annotations

from fastapi import FastAPI

from services.alerts.api import build_router
from services.alerts.consumer import AlertsHandler
from services.alerts.dispatcher import Dispatcher
from shared.service import ServiceParts, Wiring, service_app
from shared.settings import Settings
from shared.topics import Topics

SERVICE = "alerts"
GROUP_ID = "churnwatch-alerts"


def _wire(parts: ServiceParts) -> Wiring:
    topics = Topics.from_settings(parts.settings)
    dispatcher = Dispatcher(parts.settings, parts.sessions)
    consumer = parts.consumer(
        GROUP_ID, [topics.traits, topics.risk_signals],
        AlertsHandler(parts.settings, on_new_deliveries=dispatcher.wake))
    return Wiring(routers=[build_router(parts.engine)], loops=[consumer, dispatcher],
                  kafka_ready=lambda: consumer.running,
                  on_start=dispatcher.start, on_stop=dispatcher.close)


def create_app(settings: Settings) -> FastAPI:
    return service_app(SERVICE, "Churnwatch alerts", settings, _wire)
