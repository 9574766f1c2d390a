"""Scoring throughput, Kafka to durable state, next to a bare aiokafka consumer; and with two processes.

The input topics are loaded with a simulated customer base's envelopes (usage, traits,
tickets, surveys) before anything is measured. Scoring runs as real processes; its rate is
taken from its stored offsets (`consumer_offsets`, written in the same transaction as the
account state), from the first progress seen until they reach the topics' end. The
reference is a bare `AIOKafkaConsumer` in its own group reading the same topics to the end.

    .venv/bin/python -m bench.scoring_throughput [--accounts 2000 --days 14 --usage-scale 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import (
    SCORING_GROUP,
    command_line,
    input_topics,
    machine,
    produce,
    watch_until,
    write_result,
)
from deploy.local.processes import free_port
from shared.settings import Settings
from shared.topics import ensure_topics
from simulator.model import SimEvent, Simulation, SimulationConfig
from tests.support.infra import Infra, running_infra
from tests.support.processes import ServiceProcess

PARTITIONS = 6  # the production default: room for up to six scoring processes


@dataclass(frozen=True)
class Workload:
    accounts: int = 2000
    days: int = 14
    usage_scale: float = 0.1
    seed: int = 11

    def events(self) -> list[SimEvent]:
        # Scoring keeps nothing per user, so `identify` calls are not generated.
        simulation = Simulation(SimulationConfig(accounts=self.accounts, days=self.days,
                                                 seed=self.seed, usage_scale=self.usage_scale,
                                                 identify_users=False))
        return [event for day in simulation.days() for event in day.events]


async def bare_consumer(settings: Settings, topics: list[str], total: int, timeout: float) -> float:
    """Events per second a plain consumer reads these topics at, from its first fetch to the end.

    It is assigned every partition (no group coordination to wait for) and reads raw records
    without decoding them: the physical ceiling of reading the same data with aiokafka here.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for topic in topics
                      for p in (consumer.partitions_for_topic(topic) or range(PARTITIONS))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        seen = 0
        started = time.perf_counter()
        deadline = time.monotonic() + timeout
        while seen < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"bare consumer read {seen} of {total}")
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            seen += sum(len(records) for records in batch.values())
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()


def scoring_run(infra: Infra, log_dir: Path, events: list[SimEvent], processes: int,
                timeout: float, settings: Settings | None = None) -> dict[str, Any]:
    """Start `processes` scoring processes on fresh topics (or `settings`' own), load them, time
    them to the end."""
    settings = settings or infra.fresh_settings(topic_partitions=PARTITIONS)
    asyncio.run(ensure_topics(settings))
    started = [ServiceProcess("scoring", settings, free_port(), log_dir).start()
               for _ in range(processes)]
    try:
        # Let the group settle on its partitions before the work arrives.
        time.sleep(3.0 if processes > 1 else 1.0)
        counts = asyncio.run(produce(settings, events))
        total = sum(counts.values())
        progress = asyncio.run(watch_until(settings.database_url, SCORING_GROUP,
                                           input_topics(settings), total, timeout=timeout))
    finally:
        for process in started:
            process.stop()
    return {"settings": settings, "events": total, "per_topic": counts,
            "events_per_second": progress.per_second, "measured_events": progress.events,
            "seconds": progress.seconds}


def measure(infra: Infra, log_dir: Path, workload: Workload, *, scaling: bool = True,
            timeout: float = 900.0) -> dict[str, Any]:
    events = workload.events()
    one = scoring_run(infra, log_dir, events, 1, timeout)
    settings: Settings = one["settings"]
    bare = asyncio.run(bare_consumer(settings, input_topics(settings), one["events"], timeout))
    result: dict[str, Any] = {
        "workload": {"accounts": workload.accounts, "days": workload.days,
                     "usage_scale": workload.usage_scale, "seed": workload.seed,
                     "events": one["events"], "per_topic": one["per_topic"],
                     "partitions_per_topic": PARTITIONS},
        "scoring_events_per_second": round(one["events_per_second"]),
        "bare_consumer_events_per_second": round(bare),
        "scoring_vs_bare": round(one["events_per_second"] / bare, 4),
    }
    if scaling:
        two = scoring_run(infra, log_dir, events, 2, timeout)
        result["two_processes_events_per_second"] = round(two["events_per_second"])
        result["two_vs_one"] = round(two["events_per_second"] / one["events_per_second"], 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring_throughput")
    defaults = Workload()
    parser.add_argument("--accounts", type=int, default=defaults.accounts)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--usage-scale", type=float, default=defaults.usage_scale)
    parser.add_argument("--no-scaling", action="store_true", help="skip the two-process run")
    args = parser.parse_args()
    workload = Workload(args.accounts, args.days, args.usage_scale)
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        figures = measure(infra, Path(logs), workload, scaling=not args.no_scaling)
        result = {"benchmark": "scoring_throughput", "command": command_line(),
                  **machine(infra.postgres.url), **figures}
    print(write_result("scoring_throughput", result).read_text())


if __name__ == "__main__":
    main()
