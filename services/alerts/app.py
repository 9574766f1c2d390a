"""The alerts service's application: one consumer (traits + risk signals), the outbox
dispatcher, the scheduler for time-based work, the API and the action-link pages."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.alerts.api.account_owners import build_book_router
from services.alerts.api.alerts import alerts_api_token, build_link_router, build_router
from services.alerts.clock import Clock, SystemClock
from services.alerts.consumer import AlertsHandler
from services.alerts.delivery.dispatcher import Dispatcher
from services.alerts.lifecycle.scheduler import Scheduler
from services.alerts.links import LinkSigner
from services.alerts.routing.config import RoutingConfig, load_routing, secret_value
from services.alerts.slack.endpoints import build_slack_router
from services.alerts.store import link_secret
from shared.service import ServiceParts, Wiring, service_app
from shared.settings import Settings
from shared.token_auth import TokenGuard
from shared.topics import Topics

SERVICE = "alerts"
GROUP_ID = "churnwatch-alerts"


class AlertsRuntime:
    """The service's moving parts, reachable from tests through `app.state.alerts`."""

    def __init__(self, parts: ServiceParts, config: RoutingConfig, clock: Clock) -> None:
        settings = parts.settings
        self.clock = clock
        self.config = config
        self.links = LinkSigner(settings.alerts_public_url, timedelta(hours=settings.alerts_link_ttl_hours))
        self.dispatcher = Dispatcher(settings, parts.sessions, config, clock, self.links)
        self.scheduler = Scheduler(settings, parts.sessions, config, clock, self.dispatcher.wake)
        self._parts = parts

    async def start(self) -> None:
        settings = self._parts.settings
        secret = secret_value(settings.alerts_link_secret)
        if secret is None:
            async with self._parts.sessions() as session, session.begin():
                secret = await link_secret.link_secret(session)
        self.links.configure(secret)
        await self.dispatcher.start()


def create_app(
    settings: Settings, clock: Clock | None = None, config: RoutingConfig | None = None
) -> FastAPI:
    # A wrong routing file stops the service here, before it takes any work, naming each mistake.
    routing = config if config is not None else load_routing(settings.alerts_routing_file)
    the_clock: Clock = clock or SystemClock()
    runtime: AlertsRuntime | None = None

    def wire(parts: ServiceParts) -> Wiring:
        nonlocal runtime
        runtime = AlertsRuntime(parts, routing, the_clock)
        topics = Topics.from_settings(parts.settings)
        consumer = parts.consumer(
            GROUP_ID,
            [topics.traits, topics.risk_signals],
            AlertsHandler(parts.settings, routing, the_clock, on_new_deliveries=runtime.dispatcher.wake),
        )
        return Wiring(
            routers=[
                build_router(parts.engine, parts.sessions, parts.settings, routing),
                build_link_router(parts.engine, parts.sessions, runtime.links),
                build_book_router(parts.engine, TokenGuard(parts.engine, [alerts_api_token(parts.settings)])),
                build_slack_router(
                    parts.engine, parts.sessions, parts.settings, the_clock, runtime.dispatcher.wake
                ),
            ],
            loops=[consumer, runtime.dispatcher, runtime.scheduler],
            kafka_ready=lambda: consumer.running,
            on_start=runtime.start,
            on_stop=runtime.dispatcher.close,
        )

    app = service_app(SERVICE, "Churnwatch alerts", settings, wire)
    app.state.alerts = runtime
    app.state.clock = the_clock.now  # `shared.deps.Now`
    return app
