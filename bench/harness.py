"""What the benchmarks share: the machine's description, simulated events as envelopes on
Kafka, watching a consumer's stored progress, process memory, and writing results.

Benchmarks talk to Churnwatch only through its public surfaces: HTTP APIs, Kafka topics in
the envelope format of shared/events.py, and the `consumer_offsets` / `account_health` tables
its operators read.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiokafka
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from deploy.local.kafka import kafka_version
from deploy.local.processes import free_port
from shared.events import Envelope, EventType, encode
from shared.settings import Settings
from shared.topics import Topics
from simulator.model import SimEvent
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess
from tests.support.stack import SERVICES, Sinks, running_sinks

RESULTS = Path(__file__).parent / "results"
# The services' consumer groups, as operators see them in `consumer_offsets` and Kafka's tools.
SCORING_GROUP = "churnwatch-scoring"
ALERTS_GROUP = "churnwatch-alerts"
SOURCE = "simulator"


# --- the machine ---------------------------------------------------------------------------------


async def postgres_version(database_url: str) -> str:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(text("SHOW server_version"))).scalar_one())
    finally:
        await engine.dispose()


def machine(database_url: str | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "kafka": kafka_version(),
        # Other work on the machine skews every figure: say how busy it was.
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
    }
    if database_url is not None:
        info["postgresql"] = asyncio.run(postgres_version(database_url))
    return info


def command_line() -> str:
    module = sys.modules["__main__"].__spec__
    name = module.name.removesuffix(".__main__") if module is not None else None
    program = f"python -m {name}" if name is not None else sys.argv[0]
    return " ".join([".venv/bin/" + program if program.startswith("python") else program,
                     *map(shlex.quote, sys.argv[1:])])


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


# --- the system as processes --------------------------------------------------------------------


System = tuple[Settings, Sinks, dict[str, ServiceProcess]]


@contextmanager
def running_system(infra: Infra, directory: Path, **overrides: Any) -> Iterator[System]:
    """The four services and the Slack/SMTP sink as processes, on fresh topics and database."""
    with running_sinks(directory) as sinks:
        settings = infra.fresh_settings(
            slack_webhook_url=sinks.slack_url, smtp_host="127.0.0.1", smtp_port=sinks.smtp_port,
            delivery_poll_seconds=0.2, topic_partitions=6, **overrides)
        processes = {name: ServiceProcess(name, settings, free_port(), directory) for name in SERVICES}
        try:
            for process in processes.values():
                process.start()
            yield settings, sinks, processes
        finally:
            for process in processes.values():
                process.stop()


# --- simulated events as envelopes ----------------------------------------------------------------


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def to_envelope(event: SimEvent, received_at: datetime) -> Envelope | None:
    """The envelope Churnwatch's own ingest/surveys would publish for a simulated event.

    For loading topics directly when a benchmark measures what happens downstream of ingest.
    `identify` is left out (None): scoring keeps nothing per user.
    """
    body = event.body
    if event.channel == "segment":
        kind = body["type"]
        if kind == "identify":
            return None
        if kind == "group":
            payload: dict[str, Any] = {"traits": body["traits"], "group_id": body["groupId"]}
            event_type = EventType.GROUP
        else:
            payload = {"event": body["event"], "properties": body.get("properties", {})}
            event_type = EventType.TRACK
        return Envelope(event_id=body["messageId"], type=event_type, account_id=event.account_id,
                        user_id=body.get("userId"), occurred_at=_time(body["timestamp"]),
                        received_at=received_at, source=SOURCE, payload=payload)
    if event.channel == "ticket":
        payload = {k: v for k, v in body.items()
                   if k not in ("account_id", "updated_at", "user_id", "event_id")}
        return Envelope(event_id=body["event_id"], type=EventType.TICKET, account_id=event.account_id,
                        user_id=body.get("user_id"), occurred_at=_time(body["updated_at"]),
                        received_at=received_at, source=SOURCE, payload=payload)
    payload = {k: body[k] for k in ("response_id", "survey_type", "score") }
    payload["comment"] = body.get("comment")
    revision = "amended" if body.get("comment") else "first"
    return Envelope(event_id=f"survey:{body['response_id']}:{revision}", type=EventType.SURVEY_RESPONSE,
                    account_id=event.account_id, user_id=body.get("user_id"),
                    occurred_at=_time(body["submitted_at"]), received_at=received_at,
                    source=SOURCE, payload=payload)


async def produce(settings: Settings, events: Iterable[SimEvent]) -> dict[str, int]:
    """Put the events' envelopes on their topics with a bare idempotent producer; counts per topic."""
    topics = Topics.from_settings(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_idempotence=True, linger_ms=5, max_batch_size=512 * 1024)
    await producer.start()
    counts: dict[str, int] = {}
    received_at = datetime.now(UTC)
    try:
        pending = []
        for event in events:
            envelope = to_envelope(event, received_at)
            if envelope is None:
                continue
            topic = topics.for_event(envelope.type)
            pending.append(await producer.send(topic, value=encode(envelope),
                                               key=envelope.partition_key()))
            counts[topic] = counts.get(topic, 0) + 1
            if len(pending) >= 2000:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return counts


def input_topics(settings: Settings) -> list[str]:
    topics = Topics.from_settings(settings)
    return [topics.usage, topics.traits, topics.tickets, topics.survey_responses]


# --- a consumer's durable progress --------------------------------------------------------------------


async def stored_offsets(engine: AsyncEngine, group: str, topics: Sequence[str]) -> int:
    """Sum of the next offsets a consumer group stored for these topics (its durable progress)."""
    async with engine.connect() as conn:
        total = (await conn.execute(
            text("SELECT coalesce(sum(next_offset), 0) FROM consumer_offsets "
                 "WHERE consumer_group = :group AND topic = ANY(:topics)"),
            {"group": group, "topics": list(topics)})).scalar_one()
    return int(total)


async def end_offsets(settings: Settings, topics: Sequence[str]) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def backlog(settings: Settings, group: str, topics: Sequence[str]) -> int:
    """Events on `topics` that a consumer group has not yet made durable."""
    engine = create_async_engine(settings.database_url, pool_size=1)
    try:
        return await end_offsets(settings, topics) - await stored_offsets(engine, group, topics)
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Progress:
    events: int  # consumed between the first and the last sample
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")


async def watch_until(database_url: str, group: str, topics: Sequence[str], end: int, *,
                      timeout: float, every: float = 0.1) -> Progress:
    """Poll stored offsets until they reach `end`; the rate is from the first progress seen.

    (A run so short that it was over at the first look is timed from that look.)
    """
    deadline = time.monotonic() + timeout
    watching_since = time.perf_counter()
    first: tuple[float, int] | None = None
    engine = create_async_engine(database_url, pool_size=1)
    try:
        while True:
            done = await stored_offsets(engine, group, topics)
            now = time.perf_counter()
            if first is None and done > 0:
                first = (now, done) if done < end else (watching_since, 0)
            if done >= end:
                assert first is not None
                return Progress(end - first[1], now - first[0])
            if time.monotonic() > deadline:
                raise TimeoutError(f"stored offsets at {done} of {end} after {timeout:.0f}s")
            await asyncio.sleep(every)
    finally:
        await engine.dispose()


# --- memory ------------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def megabytes(value: float) -> float:
    return round(value / 1_048_576, 1)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
