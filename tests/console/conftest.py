"""Scoring, alerts and the console as processes over real Kafka and PostgreSQL, fed real events:
two CSMs' books (Jane: Acme and Globex; Bob: Initech), a CSM and a lead who can sign in."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from deploy.local.processes import free_port
from services.console.users import Role, create_user
from shared.db import create_engine
from shared.events import utcnow
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.scoring.events import group, nps, usage
from tests.support.infra import API_AUTH, Infra
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually

PASSWORD = "console-password-for-tests"
JANE, BOB, LEAD = "jane@example.com", "bob@example.com", "lead@example.com"


@dataclass
class ConsoleStack:
    settings: Settings
    console: ServiceProcess
    scoring: ServiceProcess
    alerts: ServiceProcess

    @property
    def url(self) -> str:
        return self.console.base_url


async def _feed(settings: Settings) -> None:
    start = utcnow() - timedelta(days=3)
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    try:
        await publisher.publish([
            group("g-acme", "acme", "Acme <Corp>", start, csm_email=JANE, mrr=4200,
                  renewal_date="2027-02-01"),
            group("g-globex", "globex", "Globex", start, csm_email=JANE, mrr=900),
            group("g-initech", "initech", "Initech", start, csm_email=BOB, mrr=1500),
            nps("n-acme", "acme", "r-acme", 0, start + timedelta(hours=1), comment="Too slow"),
            nps("n-initech", "initech", "r-initech", 1, start + timedelta(hours=1)),
            *[usage(f"u-globex-{i}", "globex", start + timedelta(hours=2 + i)) for i in range(5)],
            nps("n-acme-2", "acme", "r-acme-2", 2, start + timedelta(days=1), user_id="user-2"),
        ])
    finally:
        await publisher.stop()
    engine = create_engine(settings)
    try:
        await create_user(engine, JANE, Role.CSM, PASSWORD)
        await create_user(engine, BOB, Role.CSM, PASSWORD)
        await create_user(engine, LEAD, Role.LEAD, PASSWORD)
    finally:
        await engine.dispose()


def _books_ready(stack: ConsoleStack) -> bool:
    scored = httpx.get(f"{stack.scoring.base_url}/v1/portfolio/accounts", headers=API_AUTH).json()
    owners = httpx.get(f"{stack.alerts.base_url}/v1/account-owners", headers=API_AUTH).json()
    acme = [a for a in owners["accounts"] if a["account_id"] == "acme"]
    return (len(scored["accounts"]) == 3 and len(owners["accounts"]) == 3
            and bool(acme) and bool(acme[0]["open_alerts"]))


@pytest.fixture(scope="package")
def console_stack(infra: Infra) -> Iterator[ConsoleStack]:
    ports = {name: free_port() for name in ("scoring", "alerts", "console")}
    settings = infra.fresh_settings(
        console_scoring_url=f"http://127.0.0.1:{ports['scoring']}",
        console_alerts_url=f"http://127.0.0.1:{ports['alerts']}",
        console_sign_in_attempts=3, log_level="INFO")
    directory = Path(tempfile.mkdtemp(prefix="churnwatch-console-"))
    processes = {name: ServiceProcess(name, settings, port, directory) for name, port in ports.items()}
    try:
        for process in processes.values():
            process.start()
        asyncio.run(_feed(settings))
        stack = ConsoleStack(settings, processes["console"], processes["scoring"], processes["alerts"])
        asyncio.run(eventually(lambda: _books_ready(stack), "both books scored and owned", within=90.0))
        yield stack
    finally:
        for process in processes.values():
            process.stop()
