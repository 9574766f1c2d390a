"""Ingest throughput through `/v1/batch` next to a bare aiokafka producer, same machine, same run.

Starts its own Kafka and PostgreSQL (as the tests do), runs ingest as a real process, and
posts Segment batches of 100 events (the official client's batch size) from 8 concurrent
connections. The reference sends the same envelopes' bytes with a bare idempotent producer.

    .venv/bin/python -m bench.ingest_throughput [--events 20000]
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

import aiokafka
import httpx
from aiokafka import AIOKafkaProducer

from deploy.local.processes import free_port
from shared.topics import Topics, ensure_topics
from tests.support.infra import running_infra
from tests.support.processes import ServiceProcess

BATCH = 100
CONCURRENCY = 8


def segment_batch(batch_no: int) -> dict[str, object]:
    return {"writeKey": "test-write-key", "batch": [
        {"type": "track", "userId": f"user-{i % 50}", "event": "Report Built",
         "messageId": f"b{batch_no}-{i}-{uuid.uuid4().hex[:8]}",
         "properties": {"report": "weekly", "rows": i}, "context": {"groupId": f"acct-{i % 200}"},
         "timestamp": "2026-11-20T10:00:00Z"}
        for i in range(BATCH)]}


async def through_ingest(base_url: str, batches: int) -> tuple[float, list[float]]:
    bodies = [segment_batch(n) for n in range(batches)]
    latencies: list[float] = []
    queue: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post("/v1/batch", json=body)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, latencies


async def bare_producer(bootstrap: str, topic: str, payloads: list[bytes]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=2,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        started = time.perf_counter()
        for start in range(0, len(payloads), BATCH):
            futures = [await producer.send(topic, value=p, key=str(i).encode())
                       for i, p in enumerate(payloads[start:start + BATCH])]
            await asyncio.gather(*futures)
        return time.perf_counter() - started
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    batches = args.events // BATCH
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        # The benchmark measures capacity, not the per-source limit.
        settings = infra.fresh_settings(rate_limit_events_per_second=1e9, rate_limit_burst=10**9)
        ingest = ServiceProcess("ingest", settings, free_port(), Path(logs)).start()
        try:
            asyncio.run(through_ingest(ingest.base_url, 5))  # warm-up
            seconds, latencies = asyncio.run(through_ingest(ingest.base_url, batches))
        finally:
            ingest.stop()
        sample = json.dumps({"schema_version": 1, "event_id": "x" * 40, "type": "track",
                             "account_id": "acct-1", "user_id": "user-1",
                             "occurred_at": "2026-11-20T10:00:00Z", "received_at": "2026-11-20T10:00:00Z",
                             "source": "bootstrap", "payload": {"event": "Report Built",
                             "properties": {"report": "weekly", "rows": 1}}}).encode()
        reference_settings = infra.fresh_settings()
        asyncio.run(ensure_topics(reference_settings))
        bare = asyncio.run(bare_producer(infra.kafka.bootstrap_servers,
                                         Topics.from_settings(reference_settings).usage,
                                         [sample] * (batches * BATCH)))
    events = batches * BATCH
    result = {
        "benchmark": "ingest_throughput",
        "command": "make bench  (.venv/bin/python -m bench.ingest_throughput --events "
                   f"{args.events})",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "events": events,
        "ingest_events_per_second": round(events / seconds),
        "bare_producer_events_per_second": round(events / bare),
        "ingest_vs_bare": round((events / seconds) / (events / bare), 3),
        "batch_request_p50_ms": round(statistics.median(latencies) * 1000, 1),
        "batch_request_p99_ms": round(sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000, 1),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / "ingest_throughput.json"
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
