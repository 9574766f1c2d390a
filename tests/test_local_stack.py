"""`python -m deploy.local run` (`make run`): the migration step runs before any service, and
`--scoring-processes N` runs N scoring consumers in one group on one machine."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.processes import free_port
from deploy.local.stack import SERVICES, LocalStack
from services.scoring.app import GROUP_ID
from shared.db import create_engine
from shared.schema_version import require_current_schema
from shared.settings import Settings


def wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} not ready within {timeout} s")


async def settled_group(bootstrap: str, group: str, members: int, within: float = 60.0) -> tuple[str, int]:
    """The group's state and member count once it is Stable with `members` (or as it is at the end)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + within
        while True:
            (response,) = await admin.describe_consumer_groups([group])
            described = response.to_object()["groups"][0]
            seen = (described["state"], len(described["members"]))
            if seen == ("Stable", members) or time.monotonic() > deadline:
                return seen
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def schema_is_current(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await require_current_schema(engine)
    finally:
        await engine.dispose()


def test_the_local_stack_migrates_first_and_runs_two_scoring_consumers(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for service in SERVICES:  # never the default ports: another stack may hold them
        monkeypatch.setenv(f"CHURNWATCH_{service.upper()}_PORT", str(free_port()))
    monkeypatch.setenv("CHURNWATCH_SLACK_WEBHOOK_URL", "http://127.0.0.1:9/unused")  # no dev sinks
    monkeypatch.setenv("CHURNWATCH_LOG_LEVEL", "WARNING")
    # Not pytest's tmp_path: PostgreSQL runs as another user, who cannot enter it (tests/support/infra.py).
    root = Path(tempfile.mkdtemp(prefix="churnwatch-local-stack-"))
    stack = LocalStack(root=root, kafka_port=free_port(), postgres_port=free_port(), scoring_processes=2)
    try:
        stack.start_infrastructure()
        env = stack.environment()
        settings = Settings(database_url=env["CHURNWATCH_DATABASE_URL"])
        asyncio.run(schema_is_current(settings))  # before any service started
        assert stack.processes == {}

        stack.start_services()
        ports = stack.scoring_ports(env)
        assert len(ports) == 2 and {"scoring", "scoring-2"} <= set(stack.processes)
        for port in ports:
            wait_ready(f"http://127.0.0.1:{port}")
        bootstrap = env["CHURNWATCH_KAFKA_BOOTSTRAP_SERVERS"]
        assert asyncio.run(settled_group(bootstrap, GROUP_ID, members=2)) == ("Stable", 2)
        assert all(process.poll() is None for process in stack.processes.values())
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert all(process.poll() is not None for process in stack.processes.values())
