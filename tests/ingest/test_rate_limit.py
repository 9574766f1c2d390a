"""Per-source token buckets: the arithmetic with a fake clock, and the 429 through the API."""

from __future__ import annotations

import pytest

from services.ingest.app import create_app
from services.ingest.rate_limit import RateLimiter, retry_after_header
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic

KEY = "test-write-key"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_new_source_may_send_its_burst_then_waits_for_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10.0, burst=50, clock=clock)
    assert limiter.acquire("app", 50) == 0.0
    assert limiter.acquire("app", 5) == pytest.approx(0.5)  # 5 tokens at 10/s
    clock.now += 0.5
    assert limiter.acquire("app", 5) == 0.0
    assert limiter.acquire("app", 1) == pytest.approx(0.1)


def test_a_refused_request_takes_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=10, clock=clock)
    assert limiter.acquire("app", 8) == 0.0
    assert limiter.acquire("app", 5) == pytest.approx(3.0)
    assert limiter.acquire("app", 2) == 0.0  # the refused 5 did not drain the bucket


def test_sources_have_buckets_of_their_own() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=1.0, burst=3, clock=clock)
    assert limiter.acquire("a", 3) == 0.0
    assert limiter.acquire("a", 1) > 0
    assert limiter.acquire("b", 3) == 0.0


def test_refill_stops_at_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=100.0, burst=20, clock=clock)
    assert limiter.acquire("app", 20) == 0.0
    clock.now += 3_600
    assert limiter.acquire("app", 20) == 0.0
    assert limiter.acquire("app", 1) == pytest.approx(0.01)


def test_a_request_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_debt() -> None:
    clock = FakeClock()
    limiter = RateLimiter(rate=10.0, burst=20, clock=clock)
    assert limiter.acquire("app", 30) == 0.0  # never refused forever
    assert limiter.acquire("app", 1) == pytest.approx(1.1)  # 10 owed + 1 wanted, at 10/s
    clock.now += 3.0
    assert limiter.acquire("app", 30) == 0.0


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


def test_rate_and_burst_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimiter(rate=0.0, burst=1)


async def test_over_the_limit_answers_429_with_retry_after_and_publishes_nothing(infra: Infra) -> None:
    settings = infra.fresh_settings(rate_limit_events_per_second=0.5, rate_limit_burst=3)
    async with serving(create_app(settings)) as client:
        allowed = await client.post("/v1/batch", json={"writeKey": KEY, "batch": [
            {"type": "track", "userId": "u", "event": "e", "messageId": f"ok-{i}"} for i in range(3)]})
        assert allowed.status_code == 200, allowed.text
        refused = await client.post("/v1/batch", json={"writeKey": KEY, "batch": [
            {"type": "track", "userId": "u", "event": "e", "messageId": f"no-{i}"} for i in range(2)]})
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "4"  # 2 events at 0.5/s
        metrics = (await client.get("/metrics")).text
        assert 'churnwatch_ingest_rejected_requests_total{reason="rate_limited"}' in metrics
    usage = await read_topic(settings, Topics.from_settings(settings).usage)
    assert sorted(e.event_id for e in usage) == ["ok-0", "ok-1", "ok-2"]
