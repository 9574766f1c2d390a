"""Reading what actually landed on a Kafka topic, from the beginning to its current end."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import Envelope, decode
from shared.settings import Settings


async def read_topic(settings: Settings, topic: str, timeout: float = 10.0) -> list[Envelope]:
    """Every envelope on `topic` now (all partitions), without joining a consumer group."""
    return [decode(value) for value in await read_raw_topic(settings, topic, timeout)]


async def read_raw_topic(settings: Settings, topic: str, timeout: float = 10.0) -> list[bytes | None]:
    """Every record value on `topic` now, as bytes: also what does not decode (dead letters)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        # The consumer's public partitions_for_topic() only knows subscribed topics.
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or []]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        values: list[bytes | None] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout}s")
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                values.extend(r.value for r in records)
        return values
    finally:
        await consumer.stop()


async def wait_for_events(
    settings: Settings, topic: str, count: int, timeout: float = 20.0
) -> list[Envelope]:
    """Poll `topic` until it holds at least `count` envelopes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        events = await read_topic(settings, topic)
        if len(events) >= count or asyncio.get_running_loop().time() > deadline:
            return events
        await asyncio.sleep(0.2)
