"""The ingest service's application: Segment-compatible routes over the common service shell."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from services.ingest.admin import build_admin_router
from services.ingest.api import IngestApi, build_router
from services.ingest.helpdesk.routes import HelpdeskWebhooks, build_helpdesk_router
from services.ingest.pruning import MessageIdPruner
from shared.service import ServiceParts, Wiring, service_app
from shared.settings import Settings

SERVICE = "ingest"


def _wire(parts: ServiceParts) -> Wiring:
    api = IngestApi(parts.settings, parts.publisher)
    helpdesk = HelpdeskWebhooks(api, parts.engine)

    async def start() -> None:
        await api.start()
        await helpdesk.seed_mappings()

    # Started after on_start (the store is open) and stopped before on_stop closes it.
    pruner = MessageIdPruner(api.store, timedelta(hours=parts.settings.message_id_retention_hours),
                             parts.settings.message_id_prune_interval_seconds)
    return Wiring(routers=[build_router(api, build_admin_router(parts.settings, parts.engine)),
                           build_helpdesk_router(helpdesk)],
                  loops=[pruner], seeds_write_key=True, on_start=start, on_stop=api.stop)


def create_app(settings: Settings) -> FastAPI:
    return service_app(SERVICE, "Churnwatch ingest", settings, _wire)
