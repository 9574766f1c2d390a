"""messageId dedupe in PostgreSQL: across restarts, across instances, within a batch,
never poisoned by a failed publish, and forgotten after the retention window."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from prometheus_client import REGISTRY
from sqlalchemy import text

from services.ingest.app import create_app
from shared.db import create_engine
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic

KEY = "test-write-key"


@asynccontextmanager
async def ingest(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as client:
        yield client


def batch(*message_ids: str) -> dict[str, Any]:
    return {"writeKey": KEY, "batch": [
        {"type": "track", "userId": "u1", "event": "Report Built", "messageId": m,
         "context": {"groupId": "acme"}} for m in message_ids]}


async def usage_ids(settings: Settings) -> list[str]:
    return sorted(e.event_id for e in await read_topic(settings, Topics.from_settings(settings).usage))


def dropped(event_type: str) -> float:
    value = REGISTRY.get_sample_value("churnwatch_ingest_duplicates_dropped_total",
                                      {"type": event_type})
    return value or 0.0


async def test_a_retry_after_a_restart_is_dropped(settings: Settings) -> None:
    async with ingest(settings) as first:
        assert (await first.post("/v1/batch", json=batch("m1", "m2"))).status_code == 200
    before = dropped("track")
    async with ingest(settings) as restarted:
        response = await restarted.post("/v1/batch", json=batch("m2", "m3"))
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    assert await usage_ids(settings) == ["m1", "m2", "m3"]
    assert dropped("track") == before + 1


async def test_two_instances_at_once_publish_each_id_once(settings: Settings) -> None:
    ids = [f"c{i}" for i in range(20)]
    async with ingest(settings) as one, ingest(settings) as two:
        responses = await asyncio.gather(
            one.post("/v1/batch", json=batch(*ids)),
            two.post("/v1/batch", json=batch(*reversed(ids))),
            one.post("/v1/batch", json=batch(*ids[5:])),
            two.post("/v1/batch", json=batch(*ids[:12])),
        )
    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert await usage_ids(settings) == sorted(ids)


async def test_duplicates_within_one_batch_are_dropped(settings: Settings) -> None:
    before = dropped("track")
    async with ingest(settings) as client:
        response = await client.post("/v1/batch", json=batch("d1", "d1", "d2", "d1"))
        assert response.status_code == 200, response.text
        assert "churnwatch_ingest_duplicates_dropped_total" in (await client.get("/metrics")).text
    assert await usage_ids(settings) == ["d1", "d2"]
    assert dropped("track") == before + 2


async def test_a_failed_publish_does_not_poison_the_id(infra: Infra) -> None:
    from deploy.local.processes import free_port

    settings = infra.fresh_settings(produce_timeout_seconds=2.0)
    async with ingest(settings) as healthy:
        dead = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
        async with ingest(dead) as broken:
            failed = await broken.post("/v1/batch", json=batch("p1", "p2"))
            assert failed.status_code == 503, failed.text
        retried = await healthy.post("/v1/batch", json=batch("p1", "p2"))
        assert retried.status_code == 200, retried.text
    assert await usage_ids(settings) == ["p1", "p2"]


async def test_ids_older_than_the_retention_are_forgotten(settings: Settings) -> None:
    assert settings.message_id_retention_hours == 48.0
    async with ingest(settings) as client:
        assert (await client.post("/v1/batch", json=batch("old", "recent"))).status_code == 200
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "UPDATE ingest_message_ids SET received_at = now() - interval '49 hours'"
                " WHERE message_id = 'old'"))
    finally:
        await engine.dispose()
    # A fresh instance prunes on its first request; the old id is then news again.
    async with ingest(settings) as client:
        assert (await client.post("/v1/batch", json=batch("old", "recent"))).status_code == 200
    assert await usage_ids(settings) == ["old", "old", "recent"]


async def test_without_messageid_only_a_message_with_its_own_timestamp_is_deduplicated(
        settings: Settings) -> None:
    untimed = {"writeKey": KEY, "type": "track", "userId": "u1", "event": "Button Clicked",
               "context": {"groupId": "acme"}}
    timed = {**untimed, "event": "Report Built", "timestamp": "2026-11-20T10:00:00Z"}
    async with ingest(settings) as client:
        for _ in range(2):  # the same click twice, at two moments: two events
            assert (await client.post("/v1/track", json=untimed)).status_code == 200
        for _ in range(2):  # a retry of one event that says when it happened: one event
            assert (await client.post("/v1/track", json=timed)).status_code == 200
    events = await read_topic(settings, Topics.from_settings(settings).usage)
    assert Counter(e.payload["event"] for e in events) == {"Button Clicked": 2, "Report Built": 1}
    clicks = [e.event_id for e in events if e.payload["event"] == "Button Clicked"]
    assert len(set(clicks)) == 2


async def test_ticket_retries_are_dropped_too(settings: Settings) -> None:
    ticket = {"writeKey": KEY, "ticket_id": "T-1", "account_id": "acme", "status": "open",
              "updated_at": "2026-11-20T10:00:00Z"}
    async with ingest(settings) as client:
        for _ in range(2):
            assert (await client.post("/v1/tickets", json=ticket)).status_code == 200
    tickets = await read_topic(settings, Topics.from_settings(settings).tickets)
    assert len(tickets) == 1
