"""A surveys service wired for tests: real Kafka, PostgreSQL and SMTP, a clock the test moves,
and the scheduler and sender driven by hand (`run_once`) instead of their background loops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys.app import create_app
from services.surveys.invitations.links import LinkSigner
from services.surveys.invitations.scheduler import Scheduler
from services.surveys.invitations.sender import InvitationSender
from services.surveys.segments import parse_arr_tiers
from shared.db import create_engine
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.surveys.support import ADMIN_TOKEN, LINK_SECRET, FakeClock, SmtpServer, wait_ready

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
DELIGHTED_KEY = "delighted-api-key"
TYPEFORM_SECRET = "typeform-secret"


@dataclass
class Surveys:
    client: httpx.AsyncClient
    settings: Settings
    clock: FakeClock
    engine: AsyncEngine
    scheduler: Scheduler
    sender: InvitationSender
    smtp: SmtpServer
    signer: LinkSigner

    async def post_admin(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    async def get_admin(self, path: str) -> httpx.Response:
        return await self.client.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpServer]:
    async with SmtpServer() as server:
        yield server


@pytest.fixture
async def surveys(infra: Infra, smtp: SmtpServer) -> AsyncIterator[Surveys]:
    settings = infra.fresh_settings(
        admin_token=ADMIN_TOKEN, survey_link_secret=LINK_SECRET, smtp_port=smtp.port,
        surveys_public_url="http://service", survey_email_from="Acme Surveys <surveys@acme.example>",
        delighted_webhook_secret=DELIGHTED_KEY, typeform_webhook_secret=TYPEFORM_SECRET)
    clock = FakeClock(NOW)
    engine = create_engine(settings)
    signer = LinkSigner(LINK_SECRET)
    try:
        async with serving(create_app(settings, clock=clock, invitation_loops=False)) as client:
            await wait_ready(client)
            yield Surveys(
                client=client, settings=settings, clock=clock, engine=engine,
                scheduler=Scheduler(settings, engine, clock, parse_arr_tiers(settings.survey_arr_tiers)),
                sender=InvitationSender(settings, engine, clock, signer, send_timeout=5.0),
                smtp=smtp, signer=signer)
    finally:
        await engine.dispose()
