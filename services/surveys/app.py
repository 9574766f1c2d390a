"""The surveys service's application: responses in (API, webhooks, response pages), insight,
the admin API, one consumer (traits and tickets), the invitation scheduler and sender.

Ready when PostgreSQL answers, the producer is connected and the consumer has joined its
group. Without CHURNWATCH_SURVEY_LINK_SECRET no invitation is queued or sent (and the
response pages answer 404); everything else works.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from fastapi import FastAPI

from services.surveys.api.admin import build_admin_router
from services.surveys.api.pages import Pages, build_pages_router
from services.surveys.api.responses import SurveysApi, build_router
from services.surveys.consumer import SurveysHandler
from services.surveys.invitations.inviting import Timing
from services.surveys.invitations.links import LinkSigner
from services.surveys.invitations.scheduler import Scheduler
from services.surveys.invitations.sender import InvitationSender
from services.surveys.invitations.ticket_csat import TicketCsat
from services.surveys.responses.recording import ResponseRecorder
from services.surveys.segments import parse_arr_tiers
from services.surveys.vendors.webhooks import build_webhook_router
from shared.events import utcnow
from shared.service import BackgroundLoop, ServiceParts, Wiring, service_app
from shared.settings import Settings
from shared.topics import Topics

log = structlog.get_logger(__name__)
SERVICE = "surveys"
GROUP_ID = "churnwatch-surveys"
Clock = Callable[[], datetime]


def create_app(settings: Settings, *, clock: Clock = utcnow, invitation_loops: bool = True) -> FastAPI:
    """`clock` is every scheduling decision's "now" (tests inject one); `invitation_loops=False`
    leaves the scheduler and sender to be driven by hand (tests call their `run_once`)."""
    # Parsed now so a malformed setting stops the service before it serves anything.
    tiers = parse_arr_tiers(settings.survey_arr_tiers)
    secret = settings.survey_link_secret.get_secret_value() if settings.survey_link_secret else None
    signer = LinkSigner(secret) if secret else None
    timing = Timing(quiet_period=timedelta(days=settings.survey_quiet_period_days),
                    link_ttl=timedelta(days=settings.survey_link_ttl_days))

    def wire(parts: ServiceParts) -> Wiring:
        recorder = ResponseRecorder(parts.engine, parts.publisher)
        api = SurveysApi(parts.settings, parts.engine, recorder, tiers)
        loops: list[BackgroundLoop] = []
        sender = InvitationSender(settings, parts.engine, clock, signer) if signer else None
        if signer is None:
            log.warning("survey_invitations_disabled",
                        reason="CHURNWATCH_SURVEY_LINK_SECRET is not set")
        elif invitation_loops:
            assert sender is not None
            loops += [Scheduler(settings, parts.engine, clock, tiers), sender]
        topics = Topics.from_settings(settings)
        csat = TicketCsat(clock=clock, tiers=tiers, timing=timing,
                          ticket_max_age=timedelta(hours=settings.survey_ticket_max_age_hours))
        wake_sender = sender.wake if sender is not None and invitation_loops else lambda: None
        handler = SurveysHandler(recorder=recorder, csat=csat, invitations_enabled=signer is not None,
                                 on_new_invitations=wake_sender)
        consumer = parts.consumer(GROUP_ID, [topics.traits, topics.tickets], handler)
        routers = [
            build_router(api),
            build_admin_router(settings, parts.engine, recorder, [t.name for t in tiers],
                               csat if signer is not None else None, wake_sender),
            build_webhook_router(settings, parts.engine, recorder, clock),
            build_pages_router(Pages(settings, parts.engine, recorder, signer, clock)),
        ]
        return Wiring(routers=routers, loops=[consumer, *loops],
                      kafka_ready=lambda: consumer.running, seeds_write_key=True)

    app = service_app(SERVICE, "Churnwatch surveys", settings, wire)
    app.state.clock = clock  # `shared.deps.Now`
    return app
