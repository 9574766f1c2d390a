"""A Kafka outage mid-request: a request answered 503 never publishes what its retry publishes.

The broker here is this module's own (stopped and restarted; every other test keeps the
session's). After the deadline, records already handed to the producer stay in aiokafka's
accumulator and are sent once the broker is back, so their messageIds stay claimed "in doubt":
the client's retry is answered 503 until the outcome is known, then dropped as a duplicate.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from deploy.local.kafka import KafkaBroker
from deploy.local.processes import free_port
from services.ingest.app import create_app
from shared.db import create_engine
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.waiting import eventually

KEY = "test-write-key"


@pytest.fixture
def broker() -> Iterator[KafkaBroker]:
    with tempfile.TemporaryDirectory(prefix="churnwatch-outage-kafka-") as root:
        own = KafkaBroker(Path(root), port=free_port(), controller_port=free_port())
        own.start()
        try:
            yield own
        finally:
            own.stop()


def batch(prefix: str, count: int = 20) -> dict[str, Any]:
    return {"writeKey": KEY, "batch": [
        {"type": "track", "userId": f"u{n % 3}", "event": "Report Built",
         "messageId": f"{prefix}-{n}", "context": {"groupId": "acme"}} for n in range(count)]}


def ids_of(body: dict[str, Any]) -> set[str]:
    return {item["messageId"] for item in body["batch"]}


async def in_doubt(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(
                "SELECT count(*) FROM ingest_message_ids WHERE in_doubt"))).scalar_one())
    finally:
        await engine.dispose()


async def accepted_eventually(http: httpx.AsyncClient, body: dict[str, Any],
                              seen: Counter[str]) -> None:
    """Retry like a Segment client until 200 (no fixed back-off: each 503 is answered at once
    or after the publish deadline)."""
    async def accepted() -> bool:
        response = await http.post("/v1/batch", json=body)
        seen[response.json().get("code", "ok")] += 1
        return response.status_code == 200
    await eventually(accepted, "the retry accepted", within=90.0)


@pytest.fixture
async def ingest_on(broker: KafkaBroker, infra: Infra) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    settings = infra.fresh_settings(kafka_bootstrap_servers=broker.bootstrap_servers,
                                    produce_timeout_seconds=2.0)
    async with serving(create_app(settings)) as http:
        yield settings, http


async def test_retries_across_a_broker_outage_publish_each_message_id_once(
        broker: KafkaBroker, ingest_on: tuple[Settings, httpx.AsyncClient]) -> None:
    settings, http = ingest_on
    before = batch("before")
    assert (await http.post("/v1/batch", json=before)).status_code == 200

    # Stopped while a request is in flight: it may be acked or not, either way retried.
    stopping = asyncio.ensure_future(asyncio.to_thread(broker.stop))
    during = batch("during")
    first_during = await http.post("/v1/batch", json=during)
    await stopping

    # Down: the records reach the producer, which holds them for the broker's return.
    down = batch("down")
    failed = await http.post("/v1/batch", json=down)
    assert failed.status_code == 503, failed.text
    assert failed.json()["code"] == "kafka_unavailable"
    assert "may still reach Kafka" in failed.json()["message"]
    assert failed.headers["Retry-After"] == "5"
    assert await in_doubt(settings) >= len(ids_of(down))
    # The retry meets ids in doubt: refused at once, nothing handed to the producer again.
    retry = await http.post("/v1/batch", json=down)
    assert retry.status_code == 503, retry.text
    assert retry.json()["code"] == "publish_in_doubt"
    assert retry.headers["Retry-After"] == "5"

    await asyncio.to_thread(broker.start)
    seen: Counter[str] = Counter()
    for body in (during, down):
        await accepted_eventually(http, body, seen)
    # The held records were delivered once the broker came back; their outcome is recorded.
    async def settled() -> bool:
        return await in_doubt(settings) == 0
    await eventually(settled, "no id left in doubt")
    for body in (before, during, down):  # later retries: dropped as duplicates
        assert (await http.post("/v1/batch", json=body)).status_code == 200

    on_topic = Counter(e.event_id for e in await read_topic(
        settings, Topics.from_settings(settings).usage))
    assert {m: n for m, n in on_topic.items() if n > 1} == {}, (first_during.status_code, seen)
    assert set(on_topic) == ids_of(before) | ids_of(during) | ids_of(down)
