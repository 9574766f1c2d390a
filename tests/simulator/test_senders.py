"""Senders against the real ingest and surveys services, on the real broker and database."""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from deploy.local.processes import free_port
from shared.events import EventType
from shared.settings import Settings
from shared.topics import Topics
from simulator.model import SimEvent, Simulation, SimulationConfig
from simulator.senders import (
    BATCH_MAX_BYTES,
    DeliveryError,
    Endpoints,
    Sender,
    retry_after_seconds,
    segment_batches,
    stream,
    ticket_signature_headers,
)
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess

KEY = "test-write-key"
SECRET = "simulated-helpdesk-secret"


def test_batches_hold_at_most_100_items_and_475_kb() -> None:
    small = [{"messageId": str(n), "type": "track"} for n in range(250)]
    assert [len(b) for b in segment_batches(small)] == [100, 100, 50]
    big = [{"messageId": str(n), "padding": "x" * 20_000} for n in range(60)]
    batches = segment_batches(big)
    assert sum(len(b) for b in batches) == 60
    assert all(sum(len(orjson.dumps(m)) + 1 for m in b) <= BATCH_MAX_BYTES for b in batches)
    assert len(batches[0]) == 23  # 24 items would pass 475,000 bytes
    with pytest.raises(ValueError, match="32 KB"):
        segment_batches([{"messageId": "huge", "padding": "x" * 40_000}])


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    now = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
    assert retry_after_seconds("Mon, 23 Nov 2026 10:00:07 GMT", now) == 7.0
    assert retry_after_seconds("Mon, 23 Nov 2026 09:00:00 GMT", now) == 0.0


@pytest.fixture
def services(infra: Infra, tmp_path: Path) -> Iterator[tuple[Settings, dict[str, ServiceProcess]]]:
    # A rate limit the simulation exceeds, so 429s happen and must be retried, not dropped.
    settings = infra.fresh_settings(rate_limit_events_per_second=400.0, rate_limit_burst=300,
                                    tickets_webhook_secret=SECRET)
    started: dict[str, ServiceProcess] = {}
    try:
        for name in ("ingest", "surveys"):
            started[name] = ServiceProcess(name, settings, free_port(), tmp_path).start()
        yield settings, started
    finally:
        for process in started.values():
            process.stop()


def expected_counts(events: list[SimEvent]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for event in events:
        if event.channel == "segment":
            counts["traits" if event.body["type"] in ("identify", "group") else "usage"] += 1
        else:
            counts["tickets" if event.channel == "ticket" else "survey-responses"] += 1
    return counts


async def test_a_simulated_base_arrives_whole_through_the_public_apis(
        services: tuple[Settings, dict[str, ServiceProcess]]) -> None:
    settings, processes = services
    days = list(Simulation(SimulationConfig(accounts=6, days=12, seed=9, usage_scale=0.5)).days())
    events = [e for d in days for e in d.events]
    endpoints = Endpoints(processes["ingest"].base_url, processes["surveys"].base_url, KEY,
                          tickets_webhook_secret=SECRET)
    async with httpx.AsyncClient(timeout=30) as client:
        sender = Sender(endpoints, client, concurrency=4)
        await stream(days, sender, pace=None)
    assert sender.stats.events == len(events)
    assert sender.stats.retries[429] > 0  # the limit was hit and every refused request retried
    topics = Topics.from_settings(settings)
    landed = {name: await read_topic(settings, getattr(topics, name.replace("-", "_")), timeout=30)
              for name in ("usage", "traits", "tickets", "survey-responses")}
    assert {name: len(found) for name, found in landed.items()} == expected_counts(events)
    # Everything is attributed to its account, the ticket ids are the simulator's own.
    assert all(e.account_id and e.account_id.startswith("acct-") for found in landed.values() for e in found)
    sent_ticket_ids = {e.body["event_id"] for e in events if e.channel == "ticket"}
    assert {e.event_id for e in landed["tickets"]} == sent_ticket_ids
    assert {e.type for e in landed["survey-responses"]} <= {EventType.SURVEY_RESPONSE}


async def test_paced_sending_follows_event_time(services: tuple[Settings, dict[str, ServiceProcess]]) -> None:
    _, processes = services
    days = list(Simulation(SimulationConfig(accounts=2, days=3, seed=2, usage_scale=0.2)).days())
    endpoints = Endpoints(processes["ingest"].base_url, processes["surveys"].base_url, KEY)
    finished: list[float] = []
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(timeout=30) as client:
        sender = Sender(endpoints, client)
        started = loop.time()
        await stream(days, sender, pace=4.0, on_day=lambda day: finished.append(loop.time() - started))
    # Day n's last quarter is due (n + 3/4) / 4 seconds in, and is never sent before. How soon
    # after is the machine's business (a loaded one is late), so only the lower bound is asserted.
    assert len(finished) == 3
    assert all(t >= (n + 0.75) / 4 for n, t in enumerate(finished)), finished
    assert finished == sorted(finished)
    assert sender.stats.events == sum(len(d.events) for d in days)


async def test_a_refused_request_raises_instead_of_being_dropped(
        services: tuple[Settings, dict[str, ServiceProcess]]) -> None:
    _, processes = services
    endpoints = Endpoints(processes["ingest"].base_url, processes["surveys"].base_url, "not-a-key")
    event = SimEvent(datetime.now(UTC), "acct-x", "segment",
                     {"type": "track", "userId": "u", "event": "Signed In", "messageId": "m1",
                      "timestamp": datetime.now(UTC).isoformat()})
    async with httpx.AsyncClient(timeout=30) as client:
        with pytest.raises(DeliveryError, match="401"):
            await Sender(endpoints, client).send([event])


def test_ticket_signature_headers_pass_ingest_s_generic_webhook_check() -> None:
    from services.ingest.helpdesk.signatures import verify_generic
    from shared.webhook_signatures import SignatureError

    body = gzip.compress(b"{}")
    now = datetime.now(UTC)
    headers = ticket_signature_headers(SECRET, body, now)
    verify_generic(SECRET, body, headers["X-Churnwatch-Signature"],
                   headers["X-Churnwatch-Signature-Timestamp"], now=now, max_age_seconds=300)
    with pytest.raises(SignatureError):
        verify_generic(SECRET, body + b" ", headers["X-Churnwatch-Signature"],
                       headers["X-Churnwatch-Signature-Timestamp"], now=now, max_age_seconds=300)
