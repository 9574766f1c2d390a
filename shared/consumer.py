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

Poison (issue 17): a record that cannot be decoded, is larger than
CHURNWATCH_CONSUMER_MAX_ENVELOPE_BYTES, or carries a type that does not belong on its topic is
dead-lettered at decode. A batch that fails with an error an event's content could cause
(`shared.poison.caused_by_content`: the database refusing a value, a handler's ValueError) is
retried in pieces, bisecting, each piece in its own transaction: the events that fail alone are
dead-lettered with the reason and their position, the rest commit once. Infrastructure errors
dead-letter nothing: the batch is retried whole with back-off. Past the dead-letter limit
(`shared.poison.DeadLetterLimit`) the consumer stops. Clean batches never pay for any of it.

Kafka-side commits happen after the database commit and only feed lag dashboards; on
assignment the consumer seeks to the offsets stored in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
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

from shared.events import Envelope, EventType, InvalidEvent, decode, encode
from shared.metrics import (
    BATCH_FAILURES,
    BATCH_PROCESSING,
    CONSUMER_LAG,
    DEAD_LETTER_LIMIT_STOPS,
    DEAD_LETTERS,
    EVENT_TIME_FRESHNESS,
    EVENTS_CONSUMED,
    EVENTS_PRODUCED,
    POISON_ISOLATIONS,
)
from shared.poison import (
    DeadLetterLimit,
    DeadLetterLimitExceeded,
    DeadLetterLimitSettings,
    caused_by_content,
    describe,
)
from shared.publisher import EventPublisher, RawMessage
from shared.runtime.backoff import exponential_backoff
from shared.runtime.polling import PollingLoop
from shared.settings import Settings
from shared.topics import Topics

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
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
consumer_outbox = Table(
    "consumer_outbox",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("consumer_group", Text, nullable=False),
    Column("topic", Text, nullable=False),
    Column("key", LargeBinary),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_consumer_outbox_group", "consumer_group", "id"),
)
processed_events = Table(
    "processed_events",
    metadata,
    Column("consumer_group", Text, primary_key=True),
    Column("event_id", Text, primary_key=True),
    Column("processed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_processed_events_processed_at", "processed_at"),
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
    # decode, too_large, wrong_topic (at decode), rejected (by the handler), processing (the
    # event makes its batch fail: found by isolation)
    kind: str = "decode"


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
        align_event_time: float | None = None,
        transactional_outbox: bool = False,
        topic_types: Mapping[str, Collection[EventType]] | None = None,
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
        # Co-partitioned topics consumed in step on event time (see _EventTimeAligner).
        self._aligner = _EventTimeAligner(align_event_time) if align_event_time is not None else None
        # Outputs written to PostgreSQL with the batch and published by a relay once committed:
        # a batch that rolls back (a crash, a failure) never published anything, which matters
        # when re-processing it need not produce the same outputs (see _OutboxRelay).
        self._relay = _OutboxRelay(self) if transactional_outbox else None
        self._last_prune = 0.0
        # Which event types belong on each consumed topic (shared.topics, plus a service's own
        # topics); an envelope of another type is dead-lettered. A topic not named: unchecked.
        allowed = {**Topics.from_settings(settings).event_types_by_topic(),
                   **{t: frozenset(types) for t, types in (topic_types or {}).items()}}
        self._allowed_types = {t: frozenset(allowed[t]) for t in self._topics if t in allowed}
        self._max_envelope_bytes = settings.consumer_max_envelope_bytes
        self._dead_letter_limit = DeadLetterLimit(DeadLetterLimitSettings(
            max_ratio=settings.consumer_dead_letter_max_ratio,
            window=settings.consumer_dead_letter_ratio_window,
            max_consecutive=settings.consumer_dead_letter_max_consecutive,
        ))
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
            # Kafka's name only; rows in PostgreSQL (offsets, processed ids, outbox) keep the plain
            # name, since each deployment has its own database.
            group_id=(self._settings.consumer_group_prefix or "") + self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_interval_ms=300_000,
            rebalance_timeout_ms=60_000,
            **({"partition_assignment_strategy": self._assignors} if self._assignors else {}),
        )
        # The listener gets the consumer now: the first assignment can happen inside start().
        consumer.subscribe(self._topics, listener=_SeekToStoredOffsets(self, consumer))
        if not await self._start_with_retry(consumer):
            # Stopped before Kafka ever answered: nothing was read, so there is nothing to finish.
            with suppress(Exception):
                await consumer.stop()
            return
        self.running = True
        failures = 0
        relay = None
        if self._relay is not None:
            relay = asyncio.create_task(self._relay.run(), name=f"{self.group_id}-outbox")
        try:
            while not self._stopping.is_set():
                # Aligned: fetch more than a batch, so the buffer holds every topic's next records.
                fetch = self._max_batch * (10 if self._aligner is not None else 1)
                batch = await consumer.getmany(timeout_ms=200, max_records=fetch)
                if self._aligner is not None:
                    batch = await self._aligner.release(consumer, batch, self._max_batch)
                if not batch:
                    continue
                async with self._processing:
                    error = await self._process_or_isolate(consumer, batch)
                    if error is None:
                        failures = 0
                    else:
                        failures += 1
                        log.error("batch_failed", attempt=failures, exc_info=error)
                        if failures >= self._max_failures:
                            raise error
                        self._rewind(consumer, batch)
                if failures:
                    await asyncio.sleep(exponential_backoff(failures, 0.1, 5.0))
        finally:
            self.running = False
            if relay is not None and self._relay is not None:
                self._relay.stop()
                await asyncio.gather(relay, return_exceptions=True)
            await consumer.stop()

    async def _start_with_retry(self, consumer: AIOKafkaConsumer) -> bool:
        """Connect, retrying while Kafka is away; False if `stop()` came first."""
        retries = 0
        while not self._stopping.is_set():
            try:
                await consumer.start()
                return True
            except (KafkaError, OSError) as exc:
                delay = exponential_backoff(retries, 0.5, 10.0)
                log.warning("kafka_unavailable", error=str(exc), retry_in=delay)
                # A stop during the back-off ends the wait at once.
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)
                retries += 1
        return False

    async def _process_or_isolate(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list]  # type: ignore[type-arg]
    ) -> Exception | None:
        """Process the batch; if it fails with an error its content could cause, find and
        dead-letter the events that make it fail and commit the rest. The error to retry the
        whole batch for (an infrastructure error), or None once it is durable. Raises
        DeadLetterLimitExceeded: the consumer stops."""
        try:
            return await self._attempt(consumer, batch)
        except DeadLetterLimitExceeded as exc:
            self._stopped_at_limit(exc)
            raise

    async def _attempt(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list]  # type: ignore[type-arg]
    ) -> Exception | None:
        try:
            await self._process(consumer, batch)
            return None
        except DeadLetterLimitExceeded:
            raise
        except Exception as exc:
            BATCH_FAILURES.labels(self._service, type(exc).__name__).inc()
            if not caused_by_content(exc):
                return exc
            first = exc
        try:
            await self._isolate(consumer, batch, first)
            return None
        except DeadLetterLimitExceeded:
            raise
        except Exception as exc:
            # The infrastructure failed while isolating: what is committed stays committed (its
            # offsets are stored), the rest is read again.
            BATCH_FAILURES.labels(self._service, type(exc).__name__).inc()
            return exc

    async def _isolate(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list],  # type: ignore[type-arg]
        error: Exception,
    ) -> None:
        owned = consumer.assignment()
        # Partition by partition, each in offset order: pieces processed in turn keep every
        # partition's stored offset moving forward.
        items = [(tp, record) for tp, records in batch.items() if tp in owned for record in records]
        log.warning("batch_failed_isolating", events=len(items), error=describe(error)[:500])
        found = await self._bisect(consumer, items, error)
        POISON_ISOLATIONS.labels(self._service, "isolated" if found else "no_culprit").inc()
        log.info("batch_isolated", events=len(items), dead_lettered=found)

    async def _bisect(
        self, consumer: AIOKafkaConsumer, items: list[tuple[TopicPartition, Any]], error: Exception
    ) -> int:
        """`items` failed together with `error`: commit the halves that succeed, split those
        that fail again for their content, dead-letter a single event that fails alone. The
        number dead-lettered. A piece failing for another reason raises."""
        if len(items) == 1:
            tp, record = items[0]
            return await self._dead_letter_culprit(consumer, tp, record, error)
        middle = len(items) // 2
        found = 0
        for piece in (items[:middle], items[middle:]):
            batch: dict[TopicPartition, list] = {}  # type: ignore[type-arg]
            for tp, record in piece:
                batch.setdefault(tp, []).append(record)
            try:
                await self._process(consumer, batch)
            except DeadLetterLimitExceeded:
                raise
            except Exception as exc:
                if not caused_by_content(exc):
                    raise
                found += await self._bisect(consumer, piece, exc)
        return found

    async def _dead_letter_culprit(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, record: Any, error: Exception
    ) -> int:
        """Dead-letter one event that makes its batch fail, and store the offset past it."""
        if tp not in consumer.assignment():
            return 0
        item = _Rejected(tp.topic, tp.partition, record.offset, record.key, record.value,
                         describe(error), "processing")
        next_offsets = {tp: record.offset + 1}
        async with self._sessions() as session, session.begin():
            stored = await self._lock_offsets(session, [tp])
            if record.offset < stored.get(tp, -1):
                return 0  # durable already (another instance got there first)
            pending = self._dead_letter_limit.check({tp: [record]}, {tp: [record.offset]})
            await self._dead_letter([item])
            await self._store_offsets(session, next_offsets)
        self._dead_letter_limit.record(pending)
        self._count_dead_letters([item])
        await self._commit_to_kafka(consumer, next_offsets)
        return 1

    def _stopped_at_limit(self, exc: DeadLetterLimitExceeded) -> None:
        DEAD_LETTER_LIMIT_STOPS.labels(self._service, self.group_id, exc.limit).inc()
        log.error("dead_letter_limit_exceeded", group=self.group_id, limit=exc.limit,
                  detail=str(exc), action="consumer stopped; nothing of the batch was committed")

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
            max_bytes = self._max_envelope_bytes
            for tp, records in batch.items():
                floor = stored.get(tp, -1)
                allowed = self._allowed_types.get(tp.topic)
                for record in records:
                    if record.offset < floor:
                        continue
                    value = record.value
                    if value is not None and len(value) > max_bytes:
                        rejected.append(_Rejected(
                            tp.topic, tp.partition, record.offset, record.key, value,
                            f"envelope of {len(value)} bytes, more than the {max_bytes} allowed "
                            "(CHURNWATCH_CONSUMER_MAX_ENVELOPE_BYTES)", "too_large"))
                        continue
                    try:
                        envelope = decode(value)
                    except InvalidEvent as exc:
                        rejected.append(_Rejected(tp.topic, tp.partition, record.offset,
                                                  record.key, value, str(exc)))
                        continue
                    if allowed is not None and envelope.type not in allowed:
                        rejected.append(_Rejected(
                            tp.topic, tp.partition, record.offset, record.key, value,
                            f"a {envelope.type.value} event does not belong on {tp.topic} "
                            f"(only {', '.join(sorted(allowed))})", "wrong_topic"))
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
                                          encode(event.envelope), reason, "rejected"))
            # Checked before anything is dead-lettered; a clean batch on partitions with no
            # recent dead letters skips it.
            limit = self._dead_letter_limit
            pending = limit.check(batch, _offsets_by_partition(rejected)) \
                if rejected or limit.active else {}
            if rejected:
                await self._dead_letter(rejected)
            if self._relay is not None:
                await self._relay.stage(session, result.outputs)
            else:
                await self._publisher.publish(result.outputs)
            next_offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
            await self._store_offsets(session, next_offsets)
        # Durable now: nothing below may fail the batch (a retry would find it already done and
        # count a failure that never happened), so each step's error is logged and left there.
        if pending:
            self._dead_letter_limit.record(pending)
        for (topic, outcome), count in outcomes.items():
            if count > 0:
                EVENTS_CONSUMED.labels(self._service, topic, outcome).inc(count)
        self._count_dead_letters(rejected)
        if fresh:
            newest = max(event.envelope.occurred_at for event in fresh)
            EVENT_TIME_FRESHNESS.processed(self._service, self.group_id, newest.timestamp())
        if self._relay is not None and result.outputs:
            self._relay.wake()
        for callback in result.after_commit:
            try:
                callback()
            except Exception:
                log.exception("after_commit_failed",
                              callback=getattr(callback, "__qualname__", repr(callback)))
        # The Kafka-side commit only feeds lag tools; losing it is harmless.
        await self._commit_to_kafka(consumer, next_offsets)
        self._record_lag(consumer, next_offsets)
        try:
            await self._prune_processed_ids()
        except Exception:
            log.exception("processed_ids_prune_failed")
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
                ("churnwatch.failure", item.kind.encode()),
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
                CONSUMER_LAG.labels(self._service, self.group_id, tp.topic, str(tp.partition)).set(
                    max(highwater - offset, 0)
                )

    def _forget_lag(self, revoked: Collection[TopicPartition]) -> None:
        """Partitions another member may own now: their lag is its to report (a sum over members
        would count it twice)."""
        for tp in revoked:
            CONSUMER_LAG.remove(self._service, self.group_id, tp.topic, str(tp.partition))

    def _rewind(self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list]) -> None:  # type: ignore[type-arg]
        owned = consumer.assignment()
        if self._aligner is not None:
            batch = self._aligner.take_back(batch)
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


def _offsets_by_partition(rejected: list[_Rejected]) -> dict[TopicPartition, list[int]]:
    offsets: dict[TopicPartition, list[int]] = {}
    for item in rejected:
        offsets.setdefault(TopicPartition(item.topic, item.partition), []).append(item.offset)
    return offsets


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: DurableConsumer, consumer: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Wait for the batch in flight to commit, so the next owner starts where it ended.
        async with self._owner._processing:
            if self._owner._aligner is not None:
                self._owner._aligner.forget(revoked)
            self._owner._dead_letter_limit.forget(revoked)
            self._owner._forget_lag(revoked)
            if revoked and self._owner._on_revoked is not None:
                self._owner._on_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        if not assigned:
            # An idle member (more members than partitions): no freshness to report, rather
            # than one that grows for ever and looks like a stuck consumer.
            EVENT_TIME_FRESHNESS.forget(self._owner._service, self._owner.group_id)
            return
        stored = await self._owner.stored_offsets(assigned)
        if self._owner._aligner is not None:
            self._owner._aligner.forget(assigned)
        for tp, offset in stored.items():
            self._consumer.seek(tp, offset)
        if self._owner._on_assigned is not None:
            self._owner._on_assigned(list(assigned))
        log.info("partitions_assigned", partitions=len(assigned), resumed_from_db=len(stored))


def _event_time(record: Any) -> float:
    """A record's event time (epoch seconds), read cheaply; -inf when unreadable (it is released
    at once and dead-lettered by the normal path)."""
    try:
        return datetime.fromisoformat(orjson.loads(record.value)["occurred_at"]).timestamp()
    except Exception:
        return float("-inf")


class _EventTimeAligner:
    """Releases fetched records of co-partitioned topics in step on event time.

    Partition i of every subscribed topic holds the same keys (accounts), but Kafka fetches
    each topic-partition at its own pace: reading a backlog, one topic's partition can run
    days of event time ahead of another's, and a handler that keys state on event time would
    see the slower topic's events as late. Like Kafka Streams' task-level timestamp
    synchronisation, fetched records wait in a buffer and a topic-partition's records are
    released only up to `slack` seconds past the earliest pending event time of the other
    topic-partitions with the same partition number; a sibling whose buffer is empty but which
    still has records on the broker holds the others at its last released time (one never
    read yet holds them entirely) until its fetch arrives. Offsets commit only for released
    records, so a crash or a rebalance re-reads what was still buffered. A partition whose
    buffer grows past `max_buffered` records is paused until it drains.
    """

    def __init__(self, slack: float, max_buffered: int = 20_000) -> None:
        self._slack = slack
        self._max_buffered = max_buffered
        self._buffers: dict[TopicPartition, deque[tuple[float, Any]]] = {}
        self._released_at: dict[TopicPartition, float] = {}
        self._paused: set[TopicPartition] = set()

    async def release(
        self, consumer: AIOKafkaConsumer, fetched: dict[TopicPartition, list], limit: int  # type: ignore[type-arg]
    ) -> dict[TopicPartition, list]:  # type: ignore[type-arg]
        for tp, records in fetched.items():
            buffer = self._buffers.setdefault(tp, deque())
            buffer.extend((_event_time(r), r) for r in records)
        owned = consumer.assignment()
        groups: dict[int, list[TopicPartition]] = {}
        for tp in owned:
            groups.setdefault(tp.partition, []).append(tp)
        # Siblings with nothing buffered: still records on the broker (hold the others at the
        # last time released), or caught up (hold nothing).
        waiting: dict[TopicPartition, bool] = {}
        for tp in owned:
            if not self._buffers.get(tp):
                waiting[tp] = await self._lagging(consumer, tp)
        released: dict[TopicPartition, list] = {}  # type: ignore[type-arg]
        budget = limit
        for members in groups.values():
            # A merge on event time: release while some member can move, within the budget.
            moved = True
            while moved and budget > 0:
                moved = False
                bounds = {tp: self._bound(tp, waiting) for tp in members}
                for tp in members:
                    queue = self._buffers.get(tp)
                    if not queue or budget <= 0:
                        continue
                    until = min((bounds[o] for o in members if o != tp), default=float("inf")) + self._slack
                    out = released.setdefault(tp, [])
                    while queue and budget > 0 and queue[0][0] <= until:
                        at, record = queue.popleft()
                        out.append(record)
                        budget -= 1
                        moved = True
                        if at > self._released_at.get(tp, float("-inf")):
                            self._released_at[tp] = at
                    if not queue:
                        # Emptied here: on the broker there may be more (unknown until fetched).
                        waiting[tp] = True
                    bounds[tp] = self._bound(tp, waiting)
        released = {tp: records for tp, records in released.items() if records}
        self._flow(consumer, owned)
        return released

    def _bound(self, tp: TopicPartition, waiting: dict[TopicPartition, bool]) -> float:
        """How far tp's siblings may go (before the slack): its next record's time if buffered;
        else, while more is on the broker, the last time it released (-inf if none yet)."""
        queue = self._buffers.get(tp)
        if queue:
            return queue[0][0]
        if waiting.get(tp, False):
            return self._released_at.get(tp, float("-inf"))
        return float("inf")

    @staticmethod
    async def _lagging(consumer: AIOKafkaConsumer, tp: TopicPartition) -> bool:
        highwater = consumer.highwater(tp)
        if highwater is None:
            return True  # not fetched yet: unknown, so wait for it
        try:
            return bool(await consumer.position(tp) < highwater)
        except Exception:
            return True

    def _flow(self, consumer: AIOKafkaConsumer, owned: set[TopicPartition]) -> None:
        for tp in owned:
            size = len(self._buffers.get(tp, ()))
            if size > self._max_buffered and tp not in self._paused:
                consumer.pause(tp)
                self._paused.add(tp)
            elif size <= self._max_buffered // 2 and tp in self._paused:
                consumer.resume(tp)
                self._paused.discard(tp)

    def take_back(self, batch: dict[TopicPartition, list]) -> dict[TopicPartition, list]:  # type: ignore[type-arg]
        """After a failed batch: everything released and buffered is to be read again; the
        returned first records tell where to seek."""
        merged: dict[TopicPartition, list] = {}  # type: ignore[type-arg]
        for tp in set(batch) | set(self._buffers):
            first = (batch.get(tp) or []) + [r for _, r in self._buffers.get(tp, ())]
            if first:
                merged[tp] = first[:1]
        self._buffers.clear()
        self._released_at.clear()
        return merged

    def forget(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._buffers.pop(tp, None)
            self._released_at.pop(tp, None)
            self._paused.discard(tp)


class _OutboxRelay:
    """Publishes a consumer's committed outputs from `consumer_outbox`, oldest first.

    One relay at a time per consumer group (a transaction-scoped advisory lock), so outputs
    keep their commit order per key across instances; a crash between publishing and deleting
    republishes the same envelopes (same event ids), which consumers drop as duplicates.
    Woken after each commit; also polls, so rows left by a crashed instance go out too.
    """

    POLL_SECONDS = 1.0

    def __init__(self, owner: DurableConsumer) -> None:
        self._owner = owner
        self._loop = PollingLoop()

    async def stage(self, session: AsyncSession, outputs: Sequence[Envelope]) -> None:
        await stage_outputs(session, self._owner._publisher.topics, self._owner.group_id, outputs)

    def wake(self) -> None:
        self._loop.wake()

    def stop(self) -> None:
        self._loop.stop()

    async def run(self) -> None:
        # The first drain, like every later one, comes on a commit's wake or after one poll.
        await self._loop.pause(self.POLL_SECONDS)
        await self._loop.run(self._drain, self.POLL_SECONDS)
        # A batch may have committed while the last drain ran: leave nothing behind.
        try:
            while await self._drain_once():
                pass
        except Exception as exc:
            log.warning("outbox_relay_failed_at_stop", error=repr(exc))

    async def _drain(self) -> bool:
        try:
            while await self._drain_once():
                pass
        except Exception as exc:  # Kafka or the database away: retried at the next wake or poll
            log.warning("outbox_relay_failed", error=str(exc))
            await asyncio.sleep(0.5)
        return False

    async def _drain_once(self) -> bool:
        owner = self._owner
        return await drain_outbox(owner._sessions, owner._publisher, owner.group_id, owner._service)


async def drain_outbox(
    sessions: async_sessionmaker[AsyncSession], publisher: EventPublisher, group_id: str,
    service: str, batch: int = 2_000,
) -> bool:
    """Publish and delete one batch of a group's committed outputs, oldest first; True if there
    may be more. Only one caller per group at a time (an advisory lock; others return False)."""
    lock_id = int.from_bytes(group_id.encode()[:8].ljust(8, b"\0"), "big") >> 1
    async with sessions() as session, session.begin():
        locked = (await session.execute(text("SELECT pg_try_advisory_xact_lock(:id)"),
                                        {"id": lock_id})).scalar()
        if not locked:
            return False
        rows = (await session.execute(
            select(consumer_outbox.c.id, consumer_outbox.c.topic, consumer_outbox.c.key,
                   consumer_outbox.c.value)
            .where(consumer_outbox.c.consumer_group == group_id)
            .order_by(consumer_outbox.c.id).limit(batch))).all()
        if not rows:
            return False
        by_topic: dict[str, list[RawMessage]] = {}
        for _, topic, key, value in rows:
            by_topic.setdefault(topic, []).append(RawMessage(key=key, value=value, headers=[]))
        for topic, messages in by_topic.items():
            await publisher.publish_raw(topic, messages)
            EVENTS_PRODUCED.labels(service, topic).inc(len(messages))
        await session.execute(
            delete(consumer_outbox).where(consumer_outbox.c.id.in_([row[0] for row in rows])))
    return len(rows) == batch


_STAGE = text(
    "INSERT INTO consumer_outbox (consumer_group, topic, key, value) "
    "SELECT :group, t, k, v FROM unnest(CAST(:t AS text[]), CAST(:k AS bytea[]), CAST(:v AS bytea[])) "
    "WITH ORDINALITY AS o(t, k, v, n) ORDER BY n"
)


async def stage_outputs(
    session: AsyncSession, topics: Topics, group_id: str, outputs: Sequence[Envelope]
) -> None:
    """Write outputs to the group's outbox inside the caller's transaction, in their order."""
    if outputs:
        await session.execute(_STAGE, {
            "group": group_id, "t": [topics.for_event(e.type) for e in outputs],
            "k": [e.partition_key() for e in outputs], "v": [encode(e) for e in outputs]})
