"""The five services as real processes over the session's real Kafka and PostgreSQL, once for
the fuzz package: the fuzzers talk to them over HTTP, as a client or an attacker would."""

from __future__ import annotations

import asyncio
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import free_port
from services.console.users import Role, create_user
from shared.db import create_engine
from shared.settings import Settings
from tests.support.infra import TEST_API_TOKEN, Infra
from tests.support.processes import ServiceProcess

# One credential for everything a fuzzed request may need: the bootstrap API token (seeded by
# every service), the admin token of the admin APIs, and ingest's bootstrap write key. Sent as
# `Authorization: Bearer`, each route reads it as the kind it wants.
CREDENTIAL = TEST_API_TOKEN
WEBHOOK_SECRET = "fuzz-webhook-secret"
ORDER = ("ingest", "surveys", "scoring", "alerts", "console")
# The console signs people in with a form and a cookie, not a token: a lead who sees every book.
CONSOLE_LEAD, CONSOLE_PASSWORD = "lead@example.com", "fuzz-console-password"


@dataclass(frozen=True)
class FuzzStack:
    settings: Settings
    services: dict[str, ServiceProcess]
    console_cookies: dict[str, str] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return self.services[service].base_url


def fuzz_settings(infra: Infra, ports: dict[str, int]) -> Settings:
    return infra.fresh_settings(
        admin_token=CREDENTIAL, bootstrap_write_key=CREDENTIAL, bootstrap_api_token=CREDENTIAL,
        zendesk_webhook_secret=WEBHOOK_SECRET, intercom_webhook_secret=WEBHOOK_SECRET,
        tickets_webhook_secret=WEBHOOK_SECRET, delighted_webhook_secret=WEBHOOK_SECRET,
        typeform_webhook_secret=WEBHOOK_SECRET, survey_link_secret="fuzz-survey-link-secret",
        alerts_link_secret="fuzz-alerts-link-secret",
        surveys_public_url=f"http://127.0.0.1:{ports['surveys']}",
        console_scoring_url=f"http://127.0.0.1:{ports['scoring']}",
        console_alerts_url=f"http://127.0.0.1:{ports['alerts']}", console_api_token=CREDENTIAL,
        log_level="INFO")


@pytest.fixture(scope="package")
def fuzz_stack(infra: Infra) -> Iterator[FuzzStack]:
    ports = {name: free_port() for name in ORDER}
    settings = fuzz_settings(infra, ports)
    directory = Path(tempfile.mkdtemp(prefix="churnwatch-fuzz-"))
    processes = {name: ServiceProcess(name, settings, ports[name], directory) for name in ORDER}
    try:
        for process in processes.values():
            process.start()
        asyncio.run(_create_lead(settings))
        yield FuzzStack(settings, processes, _signed_in(processes["console"].base_url))
    finally:
        for process in processes.values():
            process.stop()


async def _create_lead(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await create_user(engine, CONSOLE_LEAD, Role.LEAD, CONSOLE_PASSWORD)
    finally:
        await engine.dispose()


def _signed_in(console_url: str) -> dict[str, str]:
    """The console session cookie of the lead, signed in through the real form."""
    with httpx.Client(base_url=console_url) as client:
        form = client.get("/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        answer = client.post("/sign-in", data={"csrf": csrf[1], "next": "/book", "email": CONSOLE_LEAD,
                                               "password": CONSOLE_PASSWORD})
        assert answer.status_code == 303, answer.text
        return dict(client.cookies)
