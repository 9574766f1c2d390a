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
from tests.support.waiting import eventually

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


PRUNES = "churnwatch_ingest_message_id_prunes_total"


def prunes(outcome: str = "ok") -> float:
    return REGISTRY.get_sample_value(PRUNES, {"outcome": outcome}) or 0.0


async def remember_old(settings: Settings, *message_ids: str) -> None:
    """Ids as if accepted 49 hours ago: past the 48-hour retention."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO ingest_message_ids (message_id, received_at)"
                " SELECT id, now() - interval '49 hours' FROM unnest(CAST(:ids AS text[])) AS id"
                " ON CONFLICT (message_id) DO UPDATE SET received_at = excluded.received_at"),
                {"ids": list(message_ids)})
    finally:
        await engine.dispose()


async def remembered(settings: Settings, message_id: str) -> bool:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return bool((await conn.execute(text(
                "SELECT count(*) FROM ingest_message_ids WHERE message_id = :id"),
                {"id": message_id})).scalar_one())
    finally:
        await engine.dispose()


async def test_ids_older_than_the_retention_are_forgotten_in_the_background(infra: Infra) -> None:
    settings = infra.fresh_settings(message_id_prune_interval_seconds=0.2)
    assert settings.message_id_retention_hours == 48.0
    async with ingest(settings) as client:
        assert (await client.post("/v1/batch", json=batch("old", "recent"))).status_code == 200
        await remember_old(settings, "old")
        # No request is needed: the running instance's background task forgets it.
        async def forgotten() -> bool:
            return not await remembered(settings, "old")
        await eventually(forgotten, "the old id pruned")
        assert await remembered(settings, "recent")
        assert (await client.post("/v1/batch", json=batch("old", "recent"))).status_code == 200
    assert await usage_ids(settings) == ["old", "old", "recent"]


async def test_a_request_never_prunes(infra: Infra) -> None:
    """Pruning is off the request path: between the background passes, an expired id is still
    remembered, whatever requests arrive (so a request never waits for the DELETE)."""
    settings = infra.fresh_settings(message_id_prune_interval_seconds=3_600)
    before = prunes()
    async with ingest(settings) as client:
        async def started_pass_done() -> bool:
            return prunes() > before
        await eventually(started_pass_done, "the pass at start")
        await remember_old(settings, "expired")
        for _ in range(3):
            assert (await client.post("/v1/batch", json=batch("expired", "new"))).status_code == 200
        assert await remembered(settings, "expired")
    assert await usage_ids(settings) == ["new"]
    assert prunes() == before + 1


async def test_the_pruner_stops_at_once_on_shutdown(infra: Infra) -> None:
    settings = infra.fresh_settings(message_id_prune_interval_seconds=3_600)
    before = prunes()
    app = create_app(settings)
    async with serving(app):
        async def started_pass_done() -> bool:
            return prunes() > before
        await eventually(started_pass_done, "the pass at start")
        running = {t for t in asyncio.all_tasks() if t.get_name() == "ingest-MessageIdPruner"}
        assert len(running) == 1
        stopping_from = asyncio.get_running_loop().time()
    # Woken from its hour-long wait, not waited out; its task is finished, not left behind.
    assert asyncio.get_running_loop().time() - stopping_from < 5.0
    assert all(t.done() and not t.cancelled() for t in running)


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
