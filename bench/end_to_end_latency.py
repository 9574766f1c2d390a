"""End-to-end latency under a steady load, and ingest's memory while it lasts.

The whole system runs as real processes (ingest, scoring, alerts, surveys, the local
Slack/SMTP sink) on real Kafka and PostgreSQL. A simulated customer base's Segment messages
are posted to `/v1/batch` at a steady `--rate` (100 per batch, open loop: a batch leaves on
schedule whether or not earlier ones were answered). Among them travel probes:

- to score: every fifth batch carries a `track` for an account never seen before, whose first
  health score is published on the health-scores topic; latency runs from ingest's 200 for
  that batch to the score event read by a consumer tailing the topic;
- to alert: once a second, a detractor NPS response for a new account is posted to surveys;
  latency runs from surveys' 200 to the Slack message recorded by the local sink.

(On main, surveys' detractor is the one event that raises an alert from a single request;
ingest-only alert probes, e.g. an urgent ticket, fit once scoring raises such signals.)
Ingest's resident memory is sampled from /proc during the load.

    .venv/bin/python -m bench.end_to_end_latency [--rate 2000 --seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.harness import (
    SCORING_GROUP,
    backlog,
    command_line,
    input_topics,
    machine,
    megabytes,
    rss_bytes,
    running_system,
    write_result,
)
from bench.quality_metrics import percentile
from shared.settings import Settings
from shared.topics import Topics
from simulator.model import SimEvent, Simulation, SimulationConfig
from simulator.senders import Endpoints, Sender
from tests.support.infra import Infra, running_infra
from tests.support.processes import ServiceProcess
from tests.support.stack import Sinks

WRITE_KEY = "test-write-key"
BATCH = 100
SCORE_PROBE_EVERY = 5  # batches
ALERT_PROBES_PER_SECOND = 1.0
WARM_UP_SECONDS = 5.0
DRAIN_SECONDS = 30.0
PROBE_ALERT = re.compile(r"probe-alert-(\d+)")


@dataclass
class Probes:
    sent: dict[str, float] = field(default_factory=dict)
    accepted: dict[str, float] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    measured: set[str] = field(default_factory=set)  # sent after the warm-up

    def latencies(self, since: str) -> list[float]:
        start = self.accepted if since == "accepted" else self.sent
        return [self.arrived[k] - start[k] for k in self.measured if k in self.arrived and k in start]

    def figures(self, prefix: str) -> dict[str, Any]:
        result: dict[str, Any] = {f"{prefix}_probes": len(self.measured),
                                  f"{prefix}_probes_unseen": len(self.measured - self.arrived.keys())}
        for since in ("accepted", "sent"):
            values = self.latencies(since)
            for q in (50, 95, 99):
                value = percentile(values, q)
                label = f"{prefix}_p{q}_ms" + ("" if since == "accepted" else "_from_send")
                result[label] = round(value * 1000, 1) if value is not None else None
        return result


def background(accounts: int, needed: int, seed: int) -> Iterator[SimEvent]:
    simulation = Simulation(SimulationConfig(accounts=accounts, days=365, seed=seed, identify_users=False))
    sent = 0
    for day in simulation.days():
        for event in day.events:
            if event.channel == "segment":
                yield event
                sent += 1
                if sent >= needed:
                    return


def probe_track(number: int) -> SimEvent:
    now = datetime.now(UTC)
    account = f"probe-score-{number}"
    return SimEvent(now, account, "segment", {
        "type": "track", "userId": f"{account}-user", "event": "Signed In",
        "messageId": f"{account}-{int(now.timestamp() * 1e6)}", "timestamp": now.isoformat(),
        "context": {"groupId": account}, "properties": {}})


def probe_detractor(number: int) -> SimEvent:
    now = datetime.now(UTC)
    account = f"probe-alert-{number}"
    return SimEvent(now, account, "survey", {
        "response_id": f"{account}-{int(now.timestamp() * 1e6)}", "account_id": account,
        "survey_type": "nps", "score": 2, "comment": "latency probe", "submitted_at": now.isoformat()})


def probe_account_traits(number: int) -> SimEvent:
    """Alert probes are high-touch accounts with a named CSM: alerted at once, never digested."""
    now = datetime.now(UTC)
    account = f"probe-alert-{number}"
    return SimEvent(now, account, "segment", {
        "type": "group", "userId": f"{account}-champion", "groupId": account,
        "messageId": f"{account}-traits-{int(now.timestamp() * 1e6)}", "timestamp": now.isoformat(),
        "traits": {"name": account, "plan": "enterprise", "mrr": 12000, "seats": 150,
                   "csm_name": "Latency Probe", "csm_email": "probe.csm@cs.example.com",
                   "csm_slack_channel": "#cs-probes", "champion_user_id": f"{account}-champion"}})


async def tail_health_scores(settings: Settings, probes: Probes, stop: asyncio.Event) -> None:
    topic = Topics.from_settings(settings).health_scores
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, fetch_max_wait_ms=10,
                                isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=20, max_records=2000)
            now = time.perf_counter()
            for records in batch.values():
                for record in records:
                    cause = orjson.loads(record.value)["payload"].get("caused_by_event_id")
                    if cause in probes.sent:
                        probes.arrived.setdefault(cause, now)
    finally:
        await consumer.stop()


async def tail_slack(sinks: Sinks, probes: Probes, stop: asyncio.Event) -> None:
    offset = 0
    while not stop.is_set():
        if sinks.record.exists():
            with sinks.record.open("rb") as record:
                record.seek(offset)
                chunk = record.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            offset += len(complete)
            now = time.perf_counter()
            for line in complete.splitlines():
                entry = orjson.loads(line)
                if entry["kind"] != "slack":
                    continue
                match = PROBE_ALERT.search(str(entry.get("text", "")))
                key = f"probe-alert-{match.group(1)}" if match else None
                if key in probes.sent:
                    probes.arrived.setdefault(key, now)
        await asyncio.sleep(0.01)


async def sample_rss(pid: int, samples: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        samples.append(rss_bytes(pid))
        await asyncio.sleep(0.5)


async def load(settings: Settings, sinks: Sinks, processes: dict[str, ServiceProcess], rate: float,
               seconds: float, accounts: int, warm_up: float = WARM_UP_SECONDS) -> dict[str, Any]:
    score_probes, alert_probes = Probes(), Probes()
    kinds = {"segment": score_probes, "survey": alert_probes}

    def observe(kind: str, items: Any, sent: float, accepted: float) -> None:
        probes = kinds[kind]
        for item in items:
            key = item.get("messageId") or item.get("account_id")
            if key in probes.sent:
                probes.accepted[key] = accepted

    endpoints = Endpoints(processes["ingest"].base_url, processes["surveys"].base_url, WRITE_KEY)
    batches = int(rate * seconds / BATCH)
    events = background(accounts, batches * BATCH, seed=17)
    stop = asyncio.Event()
    ingest_rss: list[int] = []
    ingest_pid = processes["ingest"].process.pid  # type: ignore[union-attr]
    idle_rss = rss_bytes(ingest_pid)
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=64)) as client:
        sender = Sender(endpoints, client, concurrency=64, observer=observe)
        watchers = [asyncio.create_task(tail_health_scores(settings, score_probes, stop)),
                    asyncio.create_task(tail_slack(sinks, alert_probes, stop)),
                    asyncio.create_task(sample_rss(ingest_pid, ingest_rss, stop))]
        alert_probe_count = int(seconds * ALERT_PROBES_PER_SECOND) + 2
        await sender.send([probe_account_traits(n) for n in range(alert_probe_count)])
        await asyncio.sleep(1.0)  # the tailing consumer is positioned, the probe accounts known
        loop = asyncio.get_running_loop()
        before_load = sender.stats.events
        started = loop.time()
        in_flight: list[asyncio.Task[None]] = []
        next_alert = 0.0
        alert_number = 0
        for number in range(batches):
            due = started + number * BATCH / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            measuring = loop.time() - started >= warm_up
            batch = [next(events) for _ in range(BATCH - (1 if number % SCORE_PROBE_EVERY == 0 else 0))]
            if number % SCORE_PROBE_EVERY == 0:
                probe = probe_track(number)
                key = probe.body["messageId"]
                score_probes.sent[key] = time.perf_counter()
                if measuring:
                    score_probes.measured.add(key)
                batch.append(probe)
            in_flight.append(asyncio.create_task(sender.send(batch)))
            if loop.time() - started >= next_alert:
                next_alert += 1 / ALERT_PROBES_PER_SECOND
                alert = probe_detractor(alert_number)
                alert_probes.sent[alert.account_id] = time.perf_counter()
                if measuring:
                    alert_probes.measured.add(alert.account_id)
                alert_number += 1
                in_flight.append(asyncio.create_task(sender.send([alert])))
        await asyncio.gather(*in_flight)
        load_seconds = loop.time() - started
        # Work accepted but not yet scored when the load stops: > 0 and growing means saturation.
        unscored = await backlog(settings, SCORING_GROUP, input_topics(settings))
        deadline = loop.time() + DRAIN_SECONDS
        # The tails fill `arrived` as they read; polling it is simpler than signalling.
        while loop.time() < deadline and not (  # noqa: ASYNC110
                score_probes.measured <= score_probes.arrived.keys()
                and alert_probes.measured <= alert_probes.arrived.keys()):
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(*watchers)
    return {
        "target_events_per_second": rate,
        "achieved_events_per_second": round((sender.stats.events - before_load) / load_seconds),
        "load_seconds": round(load_seconds, 1),
        "events_sent": sender.stats.events - before_load,
        "retries": {str(k): v for k, v in sender.stats.retries.items()},
        "unscored_events_when_load_stopped": unscored,
        **score_probes.figures("to_score"),
        **alert_probes.figures("to_alert"),
        "ingest_rss_idle_mb": megabytes(idle_rss),
        "ingest_rss_peak_mb": megabytes(max(ingest_rss)),
        "ingest_rss_end_mb": megabytes(ingest_rss[-1]),
    }


def measure(infra: Infra, log_dir: Path, *, rate: float = 2000.0, seconds: float = 30.0,
            accounts: int = 300, warm_up: float = WARM_UP_SECONDS,
            slack_min_interval: float = 0.0) -> dict[str, Any]:
    # All of the load's alerts go to the one local webhook. With Slack pacing on (1 s per
    # channel in production) they queue behind each other there, and the probe would measure
    # that queue, not the pipeline; so pacing is off by default here and said so in the result.
    with running_system(infra, log_dir, slack_min_interval_seconds=slack_min_interval) as (
            settings, sinks, processes):
        figures = asyncio.run(load(settings, sinks, processes, rate, seconds, accounts, warm_up))
    return {**figures, "slack_min_interval_seconds": slack_min_interval}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.end_to_end_latency")
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second (default 2000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the load (default 30)")
    parser.add_argument("--accounts", type=int, default=300, help="simulated accounts in the load")
    parser.add_argument("--slack-min-interval", type=float, default=0.0,
                        help="Slack pacing per channel in seconds (default 0: off; production 1)")
    args = parser.parse_args()
    with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
        result = {"benchmark": "end_to_end_latency", "command": command_line(),
                  **machine(infra.postgres.url),
                  **measure(infra, Path(logs), rate=args.rate, seconds=args.seconds,
                            accounts=args.accounts, slack_min_interval=args.slack_min_interval)}
    name = "end_to_end_latency" if args.rate == 2000 else f"end_to_end_latency_{args.rate:g}"
    print(write_result(name, result).read_text())


if __name__ == "__main__":
    main()
