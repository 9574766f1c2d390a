"""Publishing envelopes to Kafka with the durability the HTTP contract promises.

`publish()` returns only once Kafka has acknowledged every event (idempotent producer,
acks=all) or raises `PublishFailed`; callers answer 200 only after it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner, murmur2

from shared.events import Envelope, encode
from shared.metrics import EVENTS_PRODUCED, PRODUCE_FAILURES, PRODUCE_IN_FLIGHT, PRODUCE_LATENCY
from shared.settings import Settings
from shared.topics import Topics

log = structlog.get_logger(__name__)


class PublishFailed(RuntimeError):
    """Kafka did not acknowledge every event in time; nothing may be reported as accepted.

    `deliveries` are the send futures of the events handed to the producer before it failed,
    in the events' order (a prefix of them; the rest were never handed over and cannot reach
    Kafka). The deadline does not take a record back from aiokafka's accumulator or from a
    produce request already on the wire: those futures are left running and resolve later,
    delivered (the idempotent producer retries until the broker answers) or failed.
    """

    def __init__(self, message: str, deliveries: Sequence[asyncio.Future[Any]] = ()) -> None:
        super().__init__(message)
        self.deliveries = list(deliveries)

    @property
    def in_doubt(self) -> bool:
        """Whether any event may be (or already is) on Kafka: a delivery still pending or done."""
        return any(not f.done() or (not f.cancelled() and f.exception() is None)
                   for f in self.deliveries)


class Overloaded(PublishFailed):
    """Too many events already wait for Kafka's acks: refused at once rather than buffered.

    aiokafka has no `buffer.memory`: without this bound a slow broker would let waiting
    requests, and the memory holding their events, grow without limit.
    """


class EncodedEvent(NamedTuple):
    """An event already encoded for the wire: for callers that build envelope bytes themselves
    (ingest's hot path) rather than an `Envelope` model per event. (A tuple: one is made per
    event, and a frozen dataclass costs several times more to build.)"""

    topic: str
    key: bytes
    value: bytes


@dataclass(frozen=True)
class RawMessage:
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


MAX_REMEMBERED_KEYS = 100_000


class RememberingPartitioner:
    """Kafka's default partitioner (murmur2 of the key over all the topic's partitions), each
    key's hash remembered.

    aiokafka's murmur2 is pure Python, several µs a call, and all of an account's events share
    its key; events land exactly where the default partitioner puts them. Forgotten wholesale
    past a bound (unattributed events are keyed by user or event id).
    """

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}

    def __call__(self, key: bytes | None, all_partitions: list[int], available: list[int]) -> int:
        if key is None:
            return int(DefaultPartitioner()(key, all_partitions, available))
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= MAX_REMEMBERED_KEYS:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def all_acked(futures: Sequence[asyncio.Future[Any]]) -> None:
    """Wait until every send's future has its ack; raise the first failure met.

    In order rather than with `gather`, which wraps each future and adds a callback to it
    (several µs per event on the hot path): the futures of one Kafka batch resolve together,
    so after the first await of a batch the others are already done and cost almost nothing.
    Unlike `gather`, a cancellation (the deadline) leaves the futures still waiting alone:
    cancelling one would not take its record back from the producer (it is sent all the same),
    it would only hide the outcome. A failure leaves none with an error nobody retrieved.
    """
    try:
        for future in futures:
            if not future.done():
                # Shielded: the deadline cancelling this task must not cancel the future
                # (only once per Kafka batch: the batch's other futures are done by then).
                await asyncio.shield(future)
            else:
                future.result()  # raises a failure
    except BaseException:
        for future in futures:
            if future.done():
                _retrieve(future)
            else:
                future.add_done_callback(_retrieve)
        raise


def producer_options(settings: Settings) -> dict[str, Any]:
    """Every service's producer settings (benchmarks build their reference producer from them,
    so both sides of a comparison batch, compress and wait for acks alike)."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "enable_idempotence": True,  # implies acks=all; retries cannot duplicate
        "acks": "all",
        "linger_ms": 2,
        "max_batch_size": 256 * 1024,
        "compression_type": None,
        "request_timeout_ms": int(settings.produce_timeout_seconds * 1000),
        "partitioner": RememberingPartitioner(),
    }


class EventPublisher:
    def __init__(self, settings: Settings, service: str) -> None:
        self._settings = settings
        self._service = service
        self.topics = Topics.from_settings(settings)
        self._producer: AIOKafkaProducer | None = None
        self._start_lock = asyncio.Lock()
        self._in_flight = 0

    async def _ensure_started(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._start_lock:
            if self._producer is None:
                producer = AIOKafkaProducer(**producer_options(self._settings))
                try:
                    await asyncio.wait_for(
                        producer.start(), timeout=self._settings.produce_timeout_seconds
                    )
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
        assert self._producer is not None
        return self._producer

    async def start(self) -> None:
        """Connect now if Kafka is there; if not, the first publish retries the connection."""
        try:
            await self._ensure_started()
        except (KafkaError, TimeoutError, OSError) as exc:
            log.warning("kafka_unavailable_at_start", error=str(exc))

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def publish(self, envelopes: Sequence[Envelope], topic: str | None = None) -> None:
        """Send every envelope to its topic (or `topic`) and wait until Kafka has acked all."""
        await self.publish_encoded([
            EncodedEvent(topic or self.topics.for_event(e.type), e.partition_key(), encode(e))
            for e in envelopes
        ])

    async def publish_encoded(self, events: Sequence[EncodedEvent]) -> None:
        """`publish` for events already encoded: the same bound, deadline, acks and metrics."""
        if not events:
            return
        waiting = self._in_flight + len(events)
        if waiting > self._settings.max_in_flight_events:
            PRODUCE_FAILURES.labels(self._service, "overloaded").inc()
            raise Overloaded(f"{self._in_flight} events are already waiting for Kafka's acks "
                             f"(limit {self._settings.max_in_flight_events})")
        started = time.perf_counter()
        deliveries: list[asyncio.Future[Any]] = []
        held = 0
        self._in_flight = waiting
        PRODUCE_IN_FLIGHT.labels(self._service).set(self._in_flight)
        try:
            # One deadline for connecting, enqueueing and the acks: send() itself can wait
            # while the producer's buffers are full.
            async with asyncio.timeout(self._settings.produce_timeout_seconds):
                producer = await self._ensure_started()
                send = producer.send
                append = deliveries.append
                for event in events:
                    append(await send(event.topic, value=event.value, key=event.key))
                await all_acked(deliveries)
        except TimeoutError as exc:
            PRODUCE_FAILURES.labels(self._service, "timeout").inc()
            held = self._still_held(deliveries)
            raise PublishFailed("Kafka did not acknowledge the events in time", deliveries) from exc
        except (KafkaError, OSError) as exc:
            PRODUCE_FAILURES.labels(self._service, type(exc).__name__).inc()
            held = self._still_held(deliveries)
            raise PublishFailed(f"Kafka is unavailable: {exc}", deliveries) from exc
        finally:
            # Events the producer still holds after a failure stay counted until they resolve.
            self._in_flight -= len(events) - held
            PRODUCE_IN_FLIGHT.labels(self._service).set(self._in_flight)
        PRODUCE_LATENCY.labels(self._service).observe(time.perf_counter() - started)
        for destination, count in Counter(event.topic for event in events).items():
            EVENTS_PRODUCED.labels(self._service, destination).inc(count)

    def _still_held(self, deliveries: Sequence[asyncio.Future[Any]]) -> int:
        """How many of a failed publish's records the producer still holds; each is released
        from the in-flight count when its future resolves."""
        held = 0
        for future in deliveries:
            if not future.done():
                held += 1
                future.add_done_callback(self._released)
        return held

    def _released(self, _: asyncio.Future[Any]) -> None:
        self._in_flight -= 1
        PRODUCE_IN_FLIGHT.labels(self._service).set(self._in_flight)

    async def publish_raw(self, topic: str, messages: Sequence[RawMessage]) -> None:
        """Send bytes as they are (the dead-letter path, where a message may not decode)."""
        if not messages:
            return
        async with asyncio.timeout(self._settings.produce_timeout_seconds):
            producer = await self._ensure_started()
            await all_acked([await producer.send(topic, value=m.value, key=m.key, headers=m.headers)
                             for m in messages])

    async def flush(self, timeout: float) -> None:
        """Wait (at most `timeout`) until the producer has sent what it holds."""
        if self._producer is not None:
            with contextlib.suppress(TimeoutError, KafkaError):
                await asyncio.wait_for(self._producer.flush(), timeout)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
