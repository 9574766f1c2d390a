"""A DurableConsumer's freshness and lag metrics, on real Kafka and PostgreSQL.

Freshness is wall clock minus the newest processed event time, computed when scraped: it keeps
growing while the consumer is stuck on a batch, instead of freezing at its last value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import AsyncSession

from shared.consumer import ConsumedEvent, DurableConsumer, HandlerResult
from shared.db import create_engine, migrate, session_factory
from shared.events import Envelope, EventType
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.support.waiting import eventually

SERVICE, GROUP = "freshness-test", "g-freshness"
LABELS = {"service": SERVICE, "group": GROUP}


def track(event_id: str, occurred_at: datetime) -> Envelope:
    return Envelope(event_id=event_id, type=EventType.TRACK, account_id="acme", occurred_at=occurred_at,
                    received_at=datetime.now(UTC), source="test", payload={"event": "x"})


def lag() -> dict[str, float]:
    """This consumer's lag by partition (labelled with its service)."""
    return {s.labels["partition"]: s.value for metric in REGISTRY.collect()
            if metric.name == "churnwatch_consumer_lag" for s in metric.samples
            if s.labels["service"] == SERVICE and s.labels["group"] == GROUP}


def freshness() -> float | None:
    return REGISTRY.get_sample_value("churnwatch_event_time_freshness_seconds", LABELS)


async def test_freshness_follows_the_newest_event_and_grows_while_the_consumer_is_stuck(
    settings: Settings,
) -> None:
    await migrate(settings)
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    engine = create_engine(settings)
    publisher = EventPublisher(settings, "test")
    handled: list[str] = []
    stuck, release = asyncio.Event(), asyncio.Event()

    async def handler(_: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
        if any(e.envelope.event_id == "late-batch" for e in events):
            stuck.set()
            await release.wait()  # a handler hung on a lock, a slow dependency
        handled.extend(e.envelope.event_id for e in events)
        return HandlerResult()

    now = datetime.now(UTC)
    # The newest event time counts, not the last one in the batch.
    await publisher.publish([track("newest", now - timedelta(seconds=120)),
                             track("older", now - timedelta(seconds=600))])
    assert freshness() is None  # no series before this consumer processed anything
    consumer = DurableConsumer(settings=settings, service=SERVICE, group_id=GROUP, topics=[topics.usage],
                               sessions=session_factory(engine), publisher=publisher, handler=handler)
    running = asyncio.create_task(consumer.run())
    try:
        # Metrics are set once the batch is durable, after the handler returned.
        # (one account: one partition, caught up)
        await eventually(lambda: len(handled) == 2 and list(lag().values()) == [0.0],
                         "the first two events processed", within=30.0)
        first = freshness()
        assert first is not None
        assert 120 <= first < 120 + 60, first

        await publisher.publish([track("late-batch", datetime.now(UTC))])
        await eventually(stuck.is_set, "the consumer stuck on its next batch", within=30.0)
        stuck_at = freshness()
        assert stuck_at is not None and stuck_at >= first
        # Nothing is processed, yet each scrape reports the data as older.
        await eventually(lambda: (freshness() or 0.0) > stuck_at + 1.0, "freshness growing", within=10.0)

        release.set()
        # Once the stuck batch commits, the newest event is seconds old.
        await eventually(lambda: "late-batch" in handled and (freshness() or 1e9) < 60,
                         "the stuck batch done, freshness back to seconds", within=30.0)
    finally:
        release.set()
        consumer.stop()
        await asyncio.wait_for(running, timeout=30.0)
        await publisher.stop()
        await engine.dispose()
