"""DurableConsumer: a stop while Kafka is away is a stop, and a durable batch never counts as failed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from deploy.local.processes import free_port
from shared.consumer import ConsumedEvent, DurableConsumer, HandlerResult, consumer_offsets
from shared.db import create_engine, migrate, session_factory
from shared.events import Envelope, EventType
from shared.metrics import BATCH_FAILURES
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import Topics, ensure_topics


async def nothing(_: AsyncSession, __: Sequence[ConsumedEvent]) -> HandlerResult:
    return HandlerResult()


async def test_stop_while_kafka_is_unreachable_returns_quietly(settings: Settings) -> None:
    nowhere = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    engine = create_engine(settings)
    consumer = DurableConsumer(settings=nowhere, service="test", group_id="g", topics=["t"],
                               sessions=session_factory(engine),
                               publisher=EventPublisher(nowhere, "test"), handler=nothing)
    running = asyncio.create_task(consumer.run())
    await asyncio.sleep(1.5)  # at least one failed connect and a back-off under way
    assert not running.done()
    consumer.stop()
    # Returns (no exception) without waiting out the back-off.
    await asyncio.wait_for(running, timeout=5.0)
    assert consumer.running is False
    await engine.dispose()


async def test_a_failing_after_commit_callback_leaves_the_batch_done(settings: Settings) -> None:
    await migrate(settings)
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    engine = create_engine(settings)
    publisher = EventPublisher(settings, "test")
    seen: list[str] = []
    handled = asyncio.Event()

    def broken() -> None:
        raise RuntimeError("a metric callback that fails")

    async def handler(_: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
        seen.extend(e.envelope.event_id for e in events)
        callbacks: list[Callable[[], None]] = [broken, handled.set]
        return HandlerResult(after_commit=callbacks)

    now = datetime.now(UTC)
    await publisher.publish([
        Envelope(event_id=f"e{i}", type=EventType.TRACK, account_id="acme", occurred_at=now,
                 received_at=now, source="test", payload={"event": "x"})
        for i in range(3)
    ])
    failures_before = BATCH_FAILURES.labels("test", "RuntimeError")._value.get()
    consumer = DurableConsumer(settings=settings, service="test", group_id="g",
                               topics=[topics.usage], sessions=session_factory(engine),
                               publisher=publisher, handler=handler)
    running = asyncio.create_task(consumer.run())
    try:
        await asyncio.wait_for(handled.wait(), timeout=30.0)
        # The loop goes on to its next poll; were the batch counted as failed it would be re-read.
        await asyncio.sleep(1.0)
    finally:
        consumer.stop()
        await asyncio.wait_for(running, timeout=30.0)
        await publisher.stop()
    async with engine.connect() as conn:
        stored = (await conn.execute(select(consumer_offsets.c.next_offset)
                                     .where(consumer_offsets.c.consumer_group == "g"))).scalars().all()
    await engine.dispose()
    assert sorted(seen) == ["e0", "e1", "e2"]
    assert sum(stored) == 3
    assert BATCH_FAILURES.labels("test", "RuntimeError")._value.get() == failures_before
