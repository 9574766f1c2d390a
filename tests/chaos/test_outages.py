"""The broker, then PostgreSQL, stopped and started again under load from the official Segment
client, with the whole system running as real processes.

While a dependency is down ingest answers 503 with `Retry-After` and the client retries with
its own back-off; the consumers retry their batches. Afterwards every messageId the client sent
is on Kafka exactly once (no duplicate from a retried request whose records the producer still
held), each consumer made each event durable once, nothing was dead-lettered for the outage,
and every service is ready again without a restart.

(tests/ingest/test_publish_outage.py proves the rule of one request against ingest alone;
tests/shared/test_dependency_outages.py the 503 of each service's routes.)
"""

from __future__ import annotations

import asyncio

import httpx

from tests.chaos.pipeline import (
    assert_nothing_dead_lettered,
    assert_nothing_lost_nothing_twice,
    processed,
)
from tests.support.infra import Infra
from tests.support.segment_load import SegmentLoad, sending
from tests.support.stack import Stack
from tests.support.waiting import eventually


async def wait_for_flow(stack: Stack, load: SegmentLoad, more_than: int) -> None:
    async def flowing() -> bool:
        return len(await processed(stack.settings, "scoring")) > more_than
    await eventually(flowing, f"scoring past {more_than} events of the load", within=120)


async def client_met_the_outage(stack: Stack) -> None:
    """The client's own requests are answered 503 (with `Retry-After`: it retries them)."""
    def refused() -> bool:
        return stack.answered("ingest", "/v1/batch", 503) > 0
    await eventually(lambda: asyncio.to_thread(refused), "ingest answering the client 503", within=60)


async def ingest_ready_is(stack: Stack, status: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(f"{stack.url('ingest')}/readyz")).status_code == status
    except httpx.HTTPError:
        return False


async def test_the_broker_stopped_and_restarted_under_client_load(
        stack: Stack, chaos_infra: Infra) -> None:
    load = SegmentLoad(stack.url("ingest"), "broker", users=40, tracks_per_user=8, pause_seconds=0.02)
    with sending(load):
        await wait_for_flow(stack, load, 50)
        await asyncio.to_thread(chaos_infra.kafka.stop)
        await client_met_the_outage(stack)
        await asyncio.to_thread(chaos_infra.kafka.start)
        flowed = len(await processed(stack.settings, "scoring"))
        await wait_for_flow(stack, load, flowed + 50)  # flowing again, before the load ends
    await assert_nothing_lost_nothing_twice(stack, load)
    await assert_nothing_dead_lettered(stack.settings)


async def test_postgres_stopped_and_restarted_under_client_load(stack: Stack, chaos_infra: Infra) -> None:
    load = SegmentLoad(stack.url("ingest"), "postgres", users=40, tracks_per_user=8, pause_seconds=0.02)
    with sending(load):
        await wait_for_flow(stack, load, 50)
        await asyncio.to_thread(chaos_infra.postgres.stop)
        await eventually(lambda: ingest_ready_is(stack, 503), "ingest not ready while PostgreSQL is down")
        await client_met_the_outage(stack)
        await asyncio.to_thread(chaos_infra.postgres.start)
        await eventually(lambda: ingest_ready_is(stack, 200), "ingest ready again")
        flowed = len(await processed(stack.settings, "scoring"))
        await wait_for_flow(stack, load, flowed + 50)
    await assert_nothing_lost_nothing_twice(stack, load)
    await assert_nothing_dead_lettered(stack.settings)
