"""Ingest throughput through `/v1/batch` next to a bare aiokafka producer, same machine, same run.

Starts its own Kafka and PostgreSQL (as the tests do), runs ingest as a real process, and
posts Segment batches of 100 events (the official client's batch size) from 8 concurrent
connections. The reference is a bare producer built from the very options ingest's producer is
built from (`shared.publisher.producer_options`: linger, batch size, compression, acks,
idempotence), sending the same bytes with the same keys: the envelopes ingest makes of that
round's batches, encoded before the clock starts. It keeps enough in flight not to stall on
acks: it sends the events in chunks of 2,000 and awaits a chunk's acks only after sending the
next one, and the last chunk's before stopping the clock.

The machine is shared (2 cores; Kafka, PostgreSQL, the client and ingest all on it), so one
pass is noisy: the two are measured in alternating rounds, and `ingest_vs_bare` is the median
of the rounds' ratios. The load average around the run is recorded with the figures.
Request bodies are encoded before the clock starts, so the client spends its CPU on HTTP only.

    .venv/bin/python -m bench.ingest_throughput [--events 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiokafka
import httpx
import orjson
from aiokafka import AIOKafkaProducer

from bench.harness import command_line
from deploy.local.processes import free_port
from services.ingest.segment import (
    encode_wire,
    event_id_for,
    explicit_account,
    occurred_at,
    wire_envelope,
)
from services.ingest.validation import Limits, validate_batch
from shared.events import partition_key_for, utcnow
from shared.publisher import EncodedEvent, producer_options
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.support.infra import running_infra
from tests.support.processes import ServiceProcess

BATCH = 100
CONCURRENCY = 8
IN_FLIGHT_CHUNK = 2_000


def segment_batch(batch_no: int) -> dict[str, Any]:
    return {"writeKey": "test-write-key", "batch": [
        {"type": "track", "userId": f"user-{i % 50}", "event": "Report Built",
         "messageId": f"b{batch_no}-{i}-{uuid.uuid4().hex[:8]}",
         "properties": {"report": "weekly", "rows": i}, "context": {"groupId": f"acct-{i % 200}"},
         "timestamp": "2026-11-20T10:00:00Z"}
        for i in range(BATCH)]}


async def through_ingest(base_url: str, bodies: list[bytes]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    headers = {"Content-Type": "application/json"}

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post("/v1/batch", content=body, headers=headers)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, latencies


def ingest_bytes(batches: list[dict[str, Any]], settings: Settings) -> list[EncodedEvent]:
    """What ingest puts on Kafka for these batches: its envelopes' bytes and partition keys."""
    limits = Limits(settings.max_event_bytes, settings.max_batch_items)
    received_at = utcnow()
    out = []
    for batch in batches:
        for item in validate_batch(batch, limits):
            message = item.message
            account = explicit_account(message)
            wire = wire_envelope(message, event_id=event_id_for(message, item.raw), account_id=account,
                                 source=settings.bootstrap_write_key_source, received_at=received_at,
                                 occurred=occurred_at(message, received_at))
            out.append(EncodedEvent("", partition_key_for(account, wire["user_id"], wire["event_id"]),
                                    encode_wire(wire)))
    return out


async def bare_producer(settings: Settings, topic: str, events: list[EncodedEvent]) -> float:
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        # Warm-up: metadata and partition leaders known before the clock starts, as for ingest.
        await asyncio.gather(*[await producer.send(topic, value=e.value, key=e.key)
                               for e in events[:BATCH]])
        started = time.perf_counter()
        previous: list[asyncio.Future[Any]] = []
        for start in range(0, len(events), IN_FLIGHT_CHUNK):
            sent = [await producer.send(topic, value=e.value, key=e.key)
                    for e in events[start:start + IN_FLIGHT_CHUNK]]
            await asyncio.gather(*previous)
            previous = sent
        await asyncio.gather(*previous)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    batches = args.events // BATCH
    events = batches * BATCH
    load_before = os.getloadavg()[0]
    ingest_rates: list[float] = []
    bare_rates: list[float] = []
    latencies: list[float] = []
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        # The benchmark measures capacity, not the per-key limit.
        settings = infra.fresh_settings(rate_limit_events_per_second=1e9, rate_limit_burst=10**9)
        reference_settings = infra.fresh_settings()
        asyncio.run(ensure_topics(reference_settings))
        reference_topic = Topics.from_settings(reference_settings).usage
        ingest = ServiceProcess("ingest", settings, free_port(), Path(logs)).start()
        try:
            warm_up = [segment_batch(999_000_000 + n) for n in range(5)]
            asyncio.run(through_ingest(ingest.base_url, [orjson.dumps(b) for b in warm_up]))
            for round_no in range(args.rounds):
                round_batches = [segment_batch(round_no * 1_000_000 + n) for n in range(batches)]
                bodies = [orjson.dumps(b) for b in round_batches]
                same_bytes = ingest_bytes(round_batches, settings)
                seconds, round_latencies = asyncio.run(through_ingest(ingest.base_url, bodies))
                ingest_rates.append(events / seconds)
                latencies += round_latencies
                bare = asyncio.run(bare_producer(settings, reference_topic, same_bytes))
                bare_rates.append(events / bare)
        finally:
            ingest.stop()
    ratios = [i / b for i, b in zip(ingest_rates, bare_rates, strict=True)]
    result = {
        "benchmark": "ingest_throughput",
        "command": command_line(),
        "cores": os.cpu_count(),
        # Other work on the machine skews both sides: the 1-minute load average around the run.
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        # Both producers: ingest's and the reference are built from these (bootstrap aside).
        "producer_options": {k: v if k != "partitioner" else type(v).__name__
                             for k, v in producer_options(reference_settings).items()
                             if k != "bootstrap_servers"},
        "reference_in_flight_chunk": IN_FLIGHT_CHUNK,
        "events_per_round": events,
        "rounds": args.rounds,
        "ingest_events_per_second": round(median(ingest_rates)),
        "bare_producer_events_per_second": round(median(bare_rates)),
        # Paired by round (each round's ingest pass next to the bare pass right after it).
        "ingest_vs_bare": round(median(ratios), 3),
        "ingest_vs_bare_per_round": [round(r, 3) for r in ratios],
        "median_ingest_vs_median_bare": round(median(ingest_rates) / median(bare_rates), 3),
        "ingest_events_per_second_per_round": [round(r) for r in ingest_rates],
        "bare_producer_events_per_second_per_round": [round(r) for r in bare_rates],
        "batch_request_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "batch_request_p99_ms": round(sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "ingest_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
