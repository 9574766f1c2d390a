"""Scoring: throughput next to a bare aiokafka consumer, end-to-end latency at a steady load,
and state bytes per account at 100,000 accounts. Same machine, same run, real processes.

    .venv/bin/python -m bench.scoring [--events 100000] [--seconds 30] [--accounts 100000]

1. Throughput: the same events (a mix of usage, traits, tickets and surveys over 2,000
   accounts, a few very busy and many quiet, spread over three days of event time) are
   read from the four input topics by a bare AIOKafkaConsumer (no decoding, no work) and
   by a scoring process from scratch; scoring's rate counts events whose state and offsets
   are committed in PostgreSQL (durable), from its first commit to its last.
2. Latency: ingest and scoring run as processes; a load generator posts Segment batches at
   a steady 2,000 events/s for `--seconds`; every 100 ms one of them carries a `group` call
   that changes a probe account's payment status. Latency is from ingest's 200 for that
   request to the health-score event it caused arriving on Kafka (after scoring committed
   it and its outbox relay published it).
3. State: `--accounts` accounts, each with a month of typical history (traits, usage by
   several users, tickets, surveys) folded by the engine and written by the store as live
   scoring writes them; bytes per account are the stored state's mean and the whole
   table's size (with indexes and TOAST) divided by the accounts, and the process memory
   that holding them took.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiokafka
import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from sqlalchemy import func, select, text

from deploy.local.processes import free_port
from services.scoring.config import load_scorecard
from services.scoring.consumer import Scorer
from services.scoring.engine import Cause
from services.scoring.model import to_entry
from services.scoring.store import account_health, save_accounts
from shared.consumer import consumer_offsets
from shared.db import create_engine, migrate, session_factory
from shared.events import Envelope, EventType, decode
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.support.infra import Infra, running_infra
from tests.support.processes import ServiceProcess

START = datetime(2026, 9, 1, tzinfo=UTC)
FEATURES = [
    "Report Built",
    "Dashboard Shared",
    "Export Run",
    "Alert Created",
    "Login",
    "Search",
    "Integration Connected",
    "Invite Sent",
]


def _envelope(
    kind: EventType, account: str, at: datetime, payload: dict[str, Any], user: str | None
) -> Envelope:
    return Envelope(
        event_id=uuid.uuid4().hex,
        type=kind,
        account_id=account,
        user_id=user,
        occurred_at=at,
        received_at=at,
        source="bench",
        payload=payload,
    )


def workload(count: int, accounts: int, seed: int = 7) -> list[Envelope]:
    """Product analytics are heavy-tailed: account i gets weight 1 / (i + 10)."""
    rng = random.Random(seed)
    names = [f"acct-{i}" for i in range(accounts)]
    weights = [1 / (i + 10) for i in range(accounts)]
    span = 3 * 86_400
    events = [
        _envelope(
            EventType.GROUP,
            name,
            START,
            {
                "traits": {
                    "name": f"Account {i}",
                    "plan": "enterprise" if i % 10 == 0 else "pro",
                    "mrr": 500 + 100 * (i % 50),
                    "seats": 5 + i % 40,
                    "renewal_date": (START + timedelta(days=30 + i % 200)).date().isoformat(),
                    "payment_status": "current",
                    "csm_email": "csm@example.com",
                }
            },
            None,
        )
        for i, name in enumerate(names)
    ]
    for account in rng.choices(names, weights, k=count - len(events)):
        at = START + timedelta(seconds=rng.uniform(0, span))
        roll = rng.random()
        if roll < 0.90:
            events.append(
                _envelope(
                    EventType.TRACK,
                    account,
                    at,
                    {"event": rng.choice(FEATURES)},
                    f"{account}-u{rng.randrange(12)}",
                )
            )
        elif roll < 0.94:
            events.append(
                _envelope(
                    EventType.TICKET,
                    account,
                    at,
                    {
                        "ticket_id": f"{account}-T{rng.randrange(20)}",
                        "status": rng.choice(["new", "open", "solved"]),
                        "priority": rng.choice(["normal", "normal", "high", "urgent"]),
                        "subject": "Export fails",
                    },
                    None,
                )
            )
        elif roll < 0.97:
            events.append(
                _envelope(
                    EventType.SURVEY_RESPONSE,
                    account,
                    at,
                    {
                        "response_id": uuid.uuid4().hex,
                        "survey_type": "nps",
                        "score": rng.randrange(11),
                        "comment": "Gainsight was easier" if roll < 0.945 else None,
                    },
                    f"{account}-u1",
                )
            )
        else:
            events.append(
                _envelope(
                    EventType.GROUP,
                    account,
                    at,
                    {
                        "traits": {
                            "payment_status": rng.choice(["current", "current", "failed"]),
                            "seats": 5 + rng.randrange(40),
                        }
                    },
                    None,
                )
            )
    events.sort(key=lambda e: e.occurred_at)  # as a live system would send them
    return events


async def publish(settings: Settings, events: list[Envelope]) -> None:
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "bench")
    try:
        for start in range(0, len(events), 5_000):
            await publisher.publish(events[start : start + 5_000])
    finally:
        await publisher.stop()


async def bare_consumer(settings: Settings, total: int) -> float:
    topics = Topics.from_settings(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"bare-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    consumer.subscribe([topics.usage, topics.traits, topics.tickets, topics.survey_responses])
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < total:
            batch = await consumer.getmany(timeout_ms=500, max_records=5_000)
            if batch and started is None:
                started = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
        assert started is not None
        return total / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def committed(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            if (await conn.execute(text("SELECT to_regclass('consumer_offsets')"))).scalar() is None:
                return 0
            total = (
                await conn.execute(
                    select(func.coalesce(func.sum(consumer_offsets.c.next_offset), 0)).where(
                        consumer_offsets.c.consumer_group == "churnwatch-scoring"
                    )
                )
            ).scalar()
            return int(total or 0)
    finally:
        await engine.dispose()


async def scoring_throughput(settings: Settings, total: int, logs: Path) -> tuple[float, float]:
    process = ServiceProcess("scoring", settings, free_port(), logs).start()
    try:
        first_at = first_count = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = await committed(settings)
            now = time.perf_counter()
            if done and first_at is None:
                first_at, first_count = now, done
            if done >= total:
                assert first_at is not None and first_count is not None
                return (done - first_count) / (now - first_at), now - first_at
            await asyncio.sleep(0.05)
        raise TimeoutError(f"scoring committed {await committed(settings)} of {total}")
    finally:
        process.stop()


async def latency(settings: Settings, seconds: float, logs: Path) -> dict[str, Any]:
    ingest = ServiceProcess("ingest", settings, free_port(), logs).start()
    scoring = ServiceProcess("scoring", settings, free_port(), logs).start()
    topics = Topics.from_settings(settings)
    arrived: dict[str, float] = {}
    watcher = AIOKafkaConsumer(
        topics.health_scores,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="latest",
        enable_auto_commit=False,
        group_id=f"w-{uuid.uuid4().hex}",
    )
    await watcher.start()
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set():
            batch = await watcher.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    arrived.setdefault(decode(record.value).payload["caused_by_event_id"], now)

    acked: dict[str, float] = {}
    sent = 0

    async def load(client: httpx.AsyncClient) -> None:
        nonlocal sent
        tick, rate, per_request = 0, 2_000, 100
        flips: dict[str, int] = {}
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            now = datetime.now(UTC).isoformat()
            batch: list[dict[str, Any]] = [
                {
                    "type": "track",
                    "userId": f"u{random.randrange(20)}",
                    "event": random.choice(FEATURES),
                    "messageId": uuid.uuid4().hex,
                    "context": {"groupId": f"live-{random.randrange(2_000)}"},
                    "timestamp": now,
                }
                for _ in range(per_request)
            ]
            probe = None
            if tick % 2 == 0:  # every 100 ms: a probe that changes a score
                probe = uuid.uuid4().hex
                account = f"probe-{tick % 50}"
                flips[account] = flips.get(account, 0) + 1
                batch[-1] = {
                    "type": "group",
                    "userId": "u1",
                    "groupId": account,
                    "messageId": probe,
                    "traits": {"payment_status": "failed" if flips[account] % 2 else "current"},
                    "timestamp": now,
                }
            response = await client.post("/v1/batch", json={"writeKey": "test-write-key", "batch": batch})
            response.raise_for_status()
            if probe is not None:
                acked[probe] = time.perf_counter()
            sent += per_request
            tick += 1
            await asyncio.sleep(max(0.0, started + tick * per_request / rate - time.perf_counter()))

    watching = asyncio.create_task(watch())
    try:
        async with httpx.AsyncClient(base_url=ingest.base_url, timeout=30) as client:
            await load(client)
        await asyncio.sleep(3)
    finally:
        stop.set()
        await watching
        await watcher.stop()
        scoring.stop()
        ingest.stop()
    # Each probe flips its account's payment status, so each changes the score (20 <-> 100).
    latencies = sorted(arrived[p] - acked[p] for p in acked if p in arrived)
    return {
        "events_sent": sent,
        "seconds": seconds,
        "probes_with_score_change": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1),
    }


def history(rng: random.Random, account: str) -> list[Envelope]:
    """A month of a typical account: traits, usage by a few users, a ticket or two, surveys."""
    users = 2 + rng.randrange(10)
    events = [
        _envelope(
            EventType.GROUP,
            account,
            START,
            {
                "traits": {
                    "name": f"Account {account}",
                    "plan": rng.choice(["pro", "enterprise", "starter"]),
                    "mrr": rng.randrange(100, 20_000),
                    "seats": users + rng.randrange(20),
                    "renewal_date": (START + timedelta(days=rng.randrange(20, 365))).date().isoformat(),
                    "payment_status": "current",
                    "champion_user_id": f"{account}-u0",
                    "lifecycle_stage": "adoption",
                    "plan_event_limit": 10_000,
                    "csm_email": "jane@example.com",
                    "csm_slack_channel": "#cs",
                }
            },
            None,
        )
    ]
    for day in range(0, 30, 2):  # every other day: the structures fill as with daily use
        for _ in range(rng.randrange(1, 3)):
            at = START + timedelta(days=day, seconds=rng.randrange(86_400))
            events.append(
                _envelope(
                    EventType.TRACK,
                    account,
                    at,
                    {"event": rng.choice(FEATURES)},
                    f"{account}-u{rng.randrange(users)}",
                )
            )
    for n in range(rng.randrange(3)):
        events.append(
            _envelope(
                EventType.TICKET,
                account,
                START + timedelta(days=10 + 7 * n),
                {"ticket_id": f"T-{n}", "status": "open", "priority": "high", "subject": "Exports time out"},
                None,
            )
        )
    events.append(
        _envelope(
            EventType.SURVEY_RESPONSE,
            account,
            START + timedelta(days=25),
            {
                "response_id": uuid.uuid4().hex,
                "survey_type": "nps",
                "score": rng.randrange(11),
                "comment": "Good, but exports are slow",
            },
            f"{account}-u1",
        )
    )
    return sorted(events, key=lambda e: e.occurred_at)


async def state_size(settings: Settings, accounts: int) -> dict[str, Any]:
    card = load_scorecard(None)
    scorer = Scorer(card, settings.scoring_lateness_seconds)
    await migrate(settings)
    engine = create_engine(settings)
    sessions = session_factory(engine)
    rng = random.Random(11)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    engines = []
    sizes = []
    folded = 0
    started = time.perf_counter()
    try:
        rows = []
        for n in range(accounts):
            account = f"acct-{n}"
            account_engine = scorer.new_engine(account)
            for event in history(rng, account):
                entry = to_entry(event, card, scorer.competitors)
                assert entry is not None
                account_engine.add(entry, Cause(event.event_id, event.type.value, entry.t, event.user_id))
                folded += 1
            account_engine.take_outputs()
            engines.append(account_engine)
            row = scorer.row(account_engine, n % settings.topic_partitions)
            sizes.append(len(row.state))
            rows.append(row)
            if len(rows) == 2_000:
                async with sessions() as session, session.begin():
                    await save_accounts(session, rows)
                rows = []
        if rows:
            async with sessions() as session, session.begin():
                await save_accounts(session, rows)
        fold_seconds = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        async with engine.connect() as conn:
            await conn.execute(text("ANALYZE account_health"))
            table = (await conn.execute(text("SELECT pg_total_relation_size('account_health')"))).scalar()
            stored = (
                await conn.execute(select(func.avg(func.octet_length(account_health.c.state))))
            ).scalar()
    finally:
        await engine.dispose()
    sizes.sort()
    return {
        "accounts": accounts,
        "events_folded": folded,
        "fold_events_per_second": round(folded / fold_seconds),
        "state_bytes_mean": round(float(stored or 0)),
        "state_bytes_p99": sizes[int(len(sizes) * 0.99) - 1],
        "state_bytes_max": sizes[-1],
        "table_bytes_per_account_with_indexes": round(int(table or 0) / accounts),
        "process_memory_bytes_per_account_in_memory": round((rss_after - rss_before) / accounts),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--accounts", type=int, default=100_000)
    args = parser.parse_args()
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        result = asyncio.run(run(infra, args, Path(logs)))
    result["command"] = (
        f"make bench-scoring  (.venv/bin/python -m bench.scoring --events {args.events} "
        f"--seconds {args.seconds:g} --accounts {args.accounts})"
    )
    print(json.dumps(result, indent=2))
    (Path(__file__).parent / "results" / "scoring.json").write_text(json.dumps(result, indent=2) + "\n")


async def run(infra: Infra, args: argparse.Namespace, logs: Path) -> dict[str, Any]:
    settings = infra.fresh_settings(topic_partitions=6)
    events = workload(args.events, 2_000)
    await publish(settings, events)
    bare = await bare_consumer(settings, len(events))
    scoring, seconds = await scoring_throughput(settings, len(events), logs)
    steady = await latency(
        infra.fresh_settings(topic_partitions=6, rate_limit_events_per_second=1e9, rate_limit_burst=10**9),
        args.seconds,
        logs,
    )
    state = await state_size(infra.fresh_settings(topic_partitions=6), args.accounts)
    return {
        "benchmark": "scoring",
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "aiokafka": aiokafka.__version__,
        "throughput": {
            "events": len(events),
            "accounts": 2_000,
            "bare_consumer_events_per_second": round(bare),
            "scoring_events_per_second": round(scoring),
            "scoring_seconds": round(seconds, 1),
            "scoring_vs_bare": round(scoring / bare, 3),
        },
        "latency_at_2000_events_per_second": steady,
        "state_at_scale": state,
        "sample_event_bytes": len(orjson.dumps(events[-1].model_dump(mode="json"))),
    }


if __name__ == "__main__":
    main()
