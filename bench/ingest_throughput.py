"""Ingest throughput through `/v1/batch` next to a bare aiokafka producer, same machine, same run.

Starts its own Kafka and PostgreSQL (as the tests do), runs ingest as a real process, and
posts Segment batches of 100 events (the official client's batch size) from 8 concurrent
connections. The reference sends envelopes of the same size with a bare idempotent producer
(same linger and batch size as ingest's), 100 at a time, awaiting each hundred's acks.

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

import aiokafka
import httpx
import orjson
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


async def through_ingest(base_url: str, batches: int, round_no: int = 0) -> tuple[float, list[float]]:
    bodies = [orjson.dumps(segment_batch(round_no * 1_000_000 + n)) for n in range(batches)]
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


async def bare_producer(bootstrap: str, topic: str, payloads: list[bytes]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=2,
                                max_batch_size=256 * 1024)
    await producer.start()
    try:
        # Warm-up: metadata and partition leaders known before the clock starts, as for ingest.
        await asyncio.gather(*[await producer.send(topic, value=payloads[0], key=str(i).encode())
                               for i in range(BATCH)])
        started = time.perf_counter()
        for start in range(0, len(payloads), BATCH):
            futures = [await producer.send(topic, value=p, key=str(i).encode())
                       for i, p in enumerate(payloads[start:start + BATCH])]
            await asyncio.gather(*futures)
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
    sample = json.dumps({"schema_version": 1, "event_id": "x" * 40, "type": "track",
                         "account_id": "acct-1", "user_id": "user-1",
                         "occurred_at": "2026-11-20T10:00:00Z", "received_at": "2026-11-20T10:00:00Z",
                         "source": "bootstrap", "payload": {"event": "Report Built",
                         "properties": {"report": "weekly", "rows": 1}}}).encode()
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        # The benchmark measures capacity, not the per-key limit.
        settings = infra.fresh_settings(rate_limit_events_per_second=1e9, rate_limit_burst=10**9)
        reference_settings = infra.fresh_settings()
        asyncio.run(ensure_topics(reference_settings))
        reference_topic = Topics.from_settings(reference_settings).usage
        ingest = ServiceProcess("ingest", settings, free_port(), Path(logs)).start()
        try:
            asyncio.run(through_ingest(ingest.base_url, 5, round_no=999))  # warm-up
            for round_no in range(args.rounds):
                seconds, round_latencies = asyncio.run(through_ingest(ingest.base_url, batches, round_no))
                ingest_rates.append(events / seconds)
                latencies += round_latencies
                bare = asyncio.run(bare_producer(infra.kafka.bootstrap_servers, reference_topic,
                                                 [sample] * events))
                bare_rates.append(events / bare)
        finally:
            ingest.stop()
    ratios = [i / b for i, b in zip(ingest_rates, bare_rates, strict=True)]
    result = {
        "benchmark": "ingest_throughput",
        "command": "make bench-ingest  (.venv/bin/python -m bench.ingest_throughput --events "
                   f"{args.events} --rounds {args.rounds})",
        "cores": os.cpu_count(),
        # Other work on the machine skews both sides: the 1-minute load average around the run.
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
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
