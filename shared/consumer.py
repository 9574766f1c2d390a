"""A Kafka consumer whose progress lives in PostgreSQL, next to the state it produces.

Per batch, in one database transaction:
  1. lock the stored offsets of the batch's partitions and drop records below them
     (already durable: a redelivery after a crash or a rebalance);
  2. drop events whose id this consumer group has processed before (client retries);
  3. hand the new events to the service's handler, which writes its state;
  4. publish the handler's output events and wait for Kafka's acks;
  5. store the next offsets and commit.
A crash anywhere before 5 rolls everything back and the batch is read again; outputs
published in 4 may then be published twice, with the same event ids, which downstream
consumers drop in their step 2. So nothing is lost and nothing is counted twice.

Kafka-side commits happen after the database commit and only feed lag dashboards; on
assignment the consumer seeks to the offsets stored in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    and_,
    delete,
    func,
    select,
    text,
    tuple_,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from shared.events import Envelope, InvalidEvent, decode, encode
from shared.metrics import (
    BATCH_FAILURES,
    BATCH_PROCESSING,
    CONSUMER_LAG,
    DEAD_LETTERS,
    EVENTS_CONSUMED,
)
from shared.publisher import EventPublisher, RawMessage
from shared.settings import Settings

log = structlog.get_logger(__name__)
PRUNE_EVERY_SECONDS = 300.0

metadata = MetaData()
consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("consumer_group", Text, primary_key=True),
    Column("topic", Text, primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
)
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer_group", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("processed_at", DateTime(timezone=True), server_default=func.now()),
)


_REMEMBER_IDS = text(
    "INSERT INTO processed_events (consumer_group, event_id) "
    "SELECT :group, unnest(CAST(:ids AS text[])) ON CONFLICT DO NOTHING RETURNING event_id"
)


@dataclass(frozen=True)
class ConsumedEvent:
    topic: str
    partition: int
    offset: int
    envelope: Envelope


@dataclass
class HandlerResult:
    """What a handler wants done with the batch besides its own writes."""

    outputs: list[Envelope] = field(default_factory=list)
    # Events the handler could not use (e.g. a payload that fails validation), with why.
    rejected: list[tuple[ConsumedEvent, str]] = field(default_factory=list)
    # Run once the batch is durable, never for a batch that rolls back and is retried:
    # metrics that must count once, waking whoever waits for the new rows.
    after_commit: list[Callable[[], None]] = field(default_factory=list)


BatchHandler = Callable[[AsyncSession, Sequence[ConsumedEvent]], Awaitable[HandlerResult]]
# Told the partitions a consumer gains or loses (after a revoked batch is durable).
PartitionsCallback = Callable[[list[TopicPartition]], None]


@dataclass
class _Rejected:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str


class DurableConsumer:
    def __init__(
        self,
        *,
        settings: Settings,
        service: str,
        group_id: str,
        topics: Sequence[str],
        sessions: async_sessionmaker[AsyncSession],
        publisher: EventPublisher,
        handler: BatchHandler,
        max_consecutive_failures: int = 20,
        max_batch: int | None = None,
        assignors: Sequence[type] | None = None,
        on_assigned: PartitionsCallback | None = None,
        on_revoked: PartitionsCallback | None = None,
    ) -> None:
        self._settings = settings
        self._service = service
        self.group_id = group_id
        self._topics = list(topics)
        self._sessions = sessions
        self._publisher = publisher
        self._handler = handler
        self._max_failures = max_consecutive_failures
        self._max_batch = max_batch or settings.consumer_max_batch
        # e.g. RangePartitionAssignor: partition i of every topic to the same member, for
        # handlers whose state is per partition across co-partitioned topics.
        self._assignors = tuple(assignors) if assignors else None
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked
        self._last_prune = 0.0
        # Held while a batch is processed; the rebalance listener takes it so a revoke
        # waits for the batch in flight to become durable. Never held around getmany().
        self._processing = asyncio.Lock()
        self._stopping = asyncio.Event()
        self.running = False

    # --- lifecycle --------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop()` is called. Raises if a batch keeps failing, rather than skip it."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=300_000,
            rebalance_timeout_ms=60_000,
            **({"partition_assignment_strategy": self._assignors} if self._assignors else {}),
        )
        # The listener gets the consumer now: the first assignment can happen inside start().
        consumer.subscribe(self._topics, listener=_SeekToStoredOffsets(self, consumer))
        await self._start_with_retry(consumer)
        self.running = True
        failures = 0
        try:
            while not self._stopping.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=self._max_batch)
                if not batch:
                    continue
                async with self._processing:
                    try:
                        await self._process(consumer, batch)
                        failures = 0
                    except Exception as exc:
                        failures += 1
                        BATCH_FAILURES.labels(self._service, type(exc).__name__).inc()
                        log.exception("batch_failed", attempt=failures)
                        if failures >= self._max_failures:
                            raise
                        self._rewind(consumer, batch)
                if failures:
                    await asyncio.sleep(min(0.1 * 2**failures, 5.0))
        finally:
            self.running = False
            await consumer.stop()

    async def _start_with_retry(self, consumer: AIOKafkaConsumer) -> None:
        delay = 0.5
        while True:
            try:
                await consumer.start()
                return
            except (KafkaError, OSError) as exc:
                if self._stopping.is_set():
                    raise
                log.warning("kafka_unavailable", error=str(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    def stop(self) -> None:
        """Ask the loop to finish its batch in flight, commit it and leave the group."""
        self._stopping.set()

    @property
    def connected(self) -> bool:
        return self.running

    # --- one batch --------------------------------------------------------------------------

    async def _process(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list]  # type: ignore[type-arg]
    ) -> None:
        started = time.perf_counter()
        owned = consumer.assignment()
        batch = {tp: records for tp, records in batch.items() if tp in owned}
        if not batch:
            return
        outcomes: Counter[tuple[str, str]] = Counter()
        async with self._sessions() as session, session.begin():
            stored = await self._lock_offsets(session, list(batch))
            fresh: list[ConsumedEvent] = []
            rejected: list[_Rejected] = []
            for tp, records in batch.items():
                floor = stored.get(tp, -1)
                for record in records:
                    if record.offset < floor:
                        continue
                    try:
                        envelope = decode(record.value)
                    except InvalidEvent as exc:
                        rejected.append(_Rejected(tp.topic, tp.partition, record.offset,
                                                  record.key, record.value, str(exc)))
                        continue
                    fresh.append(ConsumedEvent(tp.topic, tp.partition, record.offset, envelope))
            new_events = await self._drop_duplicates(session, fresh)
            for event in new_events:
                outcomes[(event.topic, "processed")] += 1
            for event in fresh:
                outcomes[(event.topic, "duplicate")] += 1
            for event in new_events:
                outcomes[(event.topic, "duplicate")] -= 1
            result = await self._handler(session, new_events) if new_events else HandlerResult()
            for event, reason in result.rejected:
                outcomes[(event.topic, "processed")] -= 1
                rejected.append(_Rejected(event.topic, event.partition, event.offset,
                                          event.envelope.partition_key(),
                                          encode(event.envelope), reason))
            await self._dead_letter(rejected)
            await self._publisher.publish(result.outputs)
            next_offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            await self._store_offsets(session, next_offsets)
        # Durable now. The Kafka-side commit only feeds lag tools; losing it is harmless.
        for (topic, outcome), count in outcomes.items():
            if count > 0:
                EVENTS_CONSUMED.labels(self._service, topic, outcome).inc(count)
        self._count_dead_letters(rejected)
        for callback in result.after_commit:
            callback()
        await self._commit_to_kafka(consumer, next_offsets)
        self._record_lag(consumer, next_offsets)
        await self._prune_processed_ids()
        BATCH_PROCESSING.labels(self._service).observe(time.perf_counter() - started)

    async def _lock_offsets(
        self, session: AsyncSession, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        rows = await session.execute(
            select(consumer_offsets.c.topic, consumer_offsets.c.partition,
                   consumer_offsets.c.next_offset)
            .where(
                and_(
                    consumer_offsets.c.consumer_group == self.group_id,
                    tuple_(consumer_offsets.c.topic, consumer_offsets.c.partition).in_(
                        [(tp.topic, tp.partition) for tp in partitions]
                    ),
                )
            )
            .with_for_update()
        )
        return {TopicPartition(t, p): o for t, p, o in rows.all()}

    async def _drop_duplicates(
        self, session: AsyncSession, events: list[ConsumedEvent]
    ) -> list[ConsumedEvent]:
        if not events:
            return []
        ids = list(dict.fromkeys(e.envelope.event_id for e in events))
        # One array parameter, one statement, whatever the batch size.
        inserted = await session.execute(_REMEMBER_IDS, {"group": self.group_id, "ids": ids})
        new_ids = set(inserted.scalars().all())
        fresh: list[ConsumedEvent] = []
        for event in events:
            # The same id twice inside one batch counts once, too.
            if event.envelope.event_id in new_ids:
                new_ids.discard(event.envelope.event_id)
                fresh.append(event)
        return fresh

    async def _store_offsets(
        self, session: AsyncSession, next_offsets: dict[TopicPartition, int]
    ) -> None:
        statement = insert(consumer_offsets).values(
            [
                {"consumer_group": self.group_id, "topic": tp.topic,
                 "partition": tp.partition, "next_offset": offset}
                for tp, offset in next_offsets.items()
            ]
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["consumer_group", "topic", "partition"],
                set_={"next_offset": statement.excluded.next_offset, "updated_at": func.now()},
            )
        )

    async def _dead_letter(self, rejected: list[_Rejected]) -> None:
        """Publish the batch's rejects together and wait for Kafka's acks once."""
        await self._publisher.publish_raw(self._publisher.topics.dead_letter, [
            RawMessage(key=item.key, value=item.value, headers=[
                ("churnwatch.reason", item.reason.encode()[:2000]),
                ("churnwatch.source_topic", item.topic.encode()),
                ("churnwatch.source_partition", str(item.partition).encode()),
                ("churnwatch.source_offset", str(item.offset).encode()),
                ("churnwatch.consumer_group", self.group_id.encode()),
            ])
            for item in rejected
        ])

    def _count_dead_letters(self, rejected: list[_Rejected]) -> None:
        for item in rejected:
            DEAD_LETTERS.labels(self._service, item.topic).inc()
            EVENTS_CONSUMED.labels(self._service, item.topic, "dead_lettered").inc()
            log.warning("dead_lettered", topic=item.topic, partition=item.partition,
                        offset=item.offset, reason=item.reason[:500])

    async def _commit_to_kafka(
        self, consumer: AIOKafkaConsumer, next_offsets: dict[TopicPartition, int]
    ) -> None:
        owned = consumer.assignment()
        offsets = {tp: o for tp, o in next_offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            log.info("kafka_commit_skipped", error=str(exc))

    async def _prune_processed_ids(self) -> None:
        """Forget event ids older than the dedupe window, at most once every few minutes.

        The window bounds how late a duplicate (a client retry, a replayed producer) can
        arrive and still be dropped; offsets, not ids, guard against Kafka redelivery.
        """
        now = time.monotonic()
        if now - self._last_prune < PRUNE_EVERY_SECONDS:
            return
        self._last_prune = now
        cutoff = func.now() - timedelta(hours=self._settings.dedupe_retention_hours)
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                delete(processed_events).where(
                    processed_events.c.consumer_group == self.group_id,
                    processed_events.c.processed_at < cutoff,
                )
            )
        if result.rowcount:  # type: ignore[attr-defined]
            log.info("processed_ids_pruned", rows=result.rowcount)  # type: ignore[attr-defined]

    def _record_lag(
        self, consumer: AIOKafkaConsumer, next_offsets: dict[TopicPartition, int]
    ) -> None:
        for tp, offset in next_offsets.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:
                CONSUMER_LAG.labels(self.group_id, tp.topic, str(tp.partition)).set(
                    max(highwater - offset, 0)
                )

    def _rewind(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        owned = consumer.assignment()
        for tp, records in batch.items():
            if tp in owned and records:
                consumer.seek(tp, records[0].offset)

    async def stored_offsets(self, partitions: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        async with self._sessions() as session:
            rows = await session.execute(
                select(consumer_offsets.c.topic, consumer_offsets.c.partition,
                       consumer_offsets.c.next_offset).where(
                    consumer_offsets.c.consumer_group == self.group_id
                )
            )
            wanted = set(partitions)
            return {
                TopicPartition(t, p): o
                for t, p, o in rows.all()
                if TopicPartition(t, p) in wanted
            }


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: DurableConsumer, consumer: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Wait for the batch in flight to commit, so the next owner starts where it ended.
        async with self._owner._processing:
            if revoked and self._owner._on_revoked is not None:
                self._owner._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            return
        stored = await self._owner.stored_offsets(assigned)
        for tp, offset in stored.items():
            self._consumer.seek(tp, offset)
        if self._owner._on_assigned is not None:
            self._owner._on_assigned(list(assigned))
        log.info("partitions_assigned", partitions=len(assigned), resumed_from_db=len(stored))
