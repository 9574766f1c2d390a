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

from shared.consumer import ConsumedEvent, DurableConsumer, HandlerResult, _SeekToStoredOffsets
from shared.db import create_engine, migrate, session_factory
from shared.events import Envelope, EventType
from shared.metrics import EVENT_TIME_FRESHNESS
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



def lag_of(service: str) -> dict[str, float]:
    return {s.labels["partition"]: s.value for metric in REGISTRY.collect()
            if metric.name == "churnwatch_consumer_lag" for s in metric.samples
            if s.labels["service"] == service and s.labels["group"] == "g-shared"}


async def test_a_partitions_lag_is_reported_by_its_owner_only(settings: Settings) -> None:
    """Two members of one group (told apart by their service label): a rebalance takes the revoked
    partitions' lag away from the old owner, so a sum over members counts each partition once."""
    await migrate(settings)
    await ensure_topics(settings)
    topics = Topics.from_settings(settings)
    engine = create_engine(settings)
    publisher = EventPublisher(settings, "test")
    members: list[DurableConsumer] = []
    tasks: list[asyncio.Task[None]] = []

    def join(service: str) -> None:
        consumer = DurableConsumer(settings=settings, service=service, group_id="g-shared",
                                   topics=[topics.usage], sessions=session_factory(engine),
                                   publisher=publisher, handler=nothing)
        members.append(consumer)
        tasks.append(asyncio.create_task(consumer.run()))

    try:
        await publisher.publish([track("first", datetime.now(UTC))])
        join("member-a")
        await eventually(lambda: list(lag_of("member-a").values()) == [0.0], "member a caught up",
                         within=30.0)
        [partition] = lag_of("member-a")
        join("member-b")
        # Kafka's eager rebalance revokes all of member a's partitions: their lag goes with them.
        await eventually(lambda: lag_of("member-a") == {}, "member a's lag forgotten at the rebalance",
                         within=60.0)
        await publisher.publish([track("second", datetime.now(UTC))])
        await eventually(lambda: partition in lag_of("member-a") or partition in lag_of("member-b"),
                         "the partition's owner processed the second event", within=60.0)
        owners = [service for service in ("member-a", "member-b") if partition in lag_of(service)]
        assert len(owners) == 1, owners
    finally:
        for consumer in members:
            consumer.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        await publisher.stop()
        await engine.dispose()


async def test_a_member_left_without_partitions_reports_no_freshness(settings: Settings) -> None:
    """More members than partitions: the idle one would otherwise report a freshness that grows for
    ever, as if stuck. aiokafka tells it its (empty) assignment through the rebalance listener."""
    engine = create_engine(settings)
    publisher = EventPublisher(settings, "test")
    consumer = DurableConsumer(settings=settings, service=SERVICE, group_id="g-idle", topics=["t"],
                               sessions=session_factory(engine), publisher=publisher, handler=nothing)
    labels = {"service": SERVICE, "group": "g-idle"}
    EVENT_TIME_FRESHNESS.processed(SERVICE, "g-idle", datetime.now(UTC).timestamp() - 30)
    assert (REGISTRY.get_sample_value("churnwatch_event_time_freshness_seconds", labels) or 0) >= 30
    # (an empty assignment never reaches the Kafka consumer: none needed here)
    await _SeekToStoredOffsets(consumer, None).on_partitions_assigned([])
    assert REGISTRY.get_sample_value("churnwatch_event_time_freshness_seconds", labels) is None
    await engine.dispose()


async def nothing(_: AsyncSession, __: Sequence[ConsumedEvent]) -> HandlerResult:
    return HandlerResult()
