"""Per-write-key token buckets in PostgreSQL: one key's rate holds across ingest instances.

Time is moved by ageing the bucket's `updated_at` (the database's clock is the only clock),
so nothing here sleeps.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from services.ingest.app import create_app
from services.ingest.helpdesk.signatures import generic_signature
from services.ingest.rate_limit import retry_after_header
from services.ingest.store import IngestStore, Rate
from shared.settings import Settings
from shared.topics import Topics
from shared.write_keys import hash_key
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic

KEY = "test-write-key"
ADMIN = {"Authorization": "Bearer admin-token"}


def batch(prefix: str, count: int, key: str = KEY) -> dict[str, Any]:
    return {"writeKey": key, "batch": [
        {"type": "track", "userId": "u", "event": "e", "messageId": f"{prefix}-{i}"} for i in range(count)]}


async def age_bucket(store: IngestStore, bucket: str, seconds: float) -> None:
    await store.pool.execute(
        "UPDATE ingest_rate_buckets SET updated_at = updated_at - make_interval(secs => $2)"
        " WHERE bucket = $1", bucket, seconds)


@pytest.fixture
async def store(settings: Settings) -> Any:
    app = create_app(settings)  # seeds the test key
    async with app.router.lifespan_context(app):
        pass
    store = IngestStore(settings.database_url)
    await store.start()
    yield store
    await store.stop()


async def test_a_key_may_send_its_burst_then_waits_for_the_rate(store: IngestStore) -> None:
    rate = Rate(per_second=10.0, burst=50)
    bucket = f"key:{hash_key(KEY)}"
    first = await store.authorize(KEY, 50, rate)
    assert (first.source, first.allowed) == ("bootstrap", True)
    refused = await store.authorize(KEY, 5, rate)
    assert not refused.allowed
    assert refused.wait_seconds == pytest.approx(0.5, abs=0.05)  # 5 tokens at 10/s
    await age_bucket(store, bucket, 0.6)
    assert (await store.authorize(KEY, 5, rate)).allowed
    # A refused request takes nothing: 1 token is still there for the next one.
    assert not (await store.authorize(KEY, 5, rate)).allowed
    await age_bucket(store, bucket, 0.15)
    assert (await store.authorize(KEY, 1, rate)).allowed


async def test_refill_stops_at_the_burst_and_a_large_request_leaves_debt(store: IngestStore) -> None:
    rate = Rate(per_second=10.0, burst=20)
    bucket = f"key:{hash_key(KEY)}"
    assert (await store.authorize(KEY, 20, rate)).allowed
    await age_bucket(store, bucket, 3_600)
    # Full again, but never more than the burst; 30 > burst passes on a full bucket...
    assert (await store.authorize(KEY, 30, rate)).allowed
    # ...and leaves 10 owed: the next event waits for 11 tokens at 10/s.
    refused = await store.authorize(KEY, 1, rate)
    assert refused.wait_seconds == pytest.approx(1.1, abs=0.05)


async def test_unknown_and_webhook_buckets(store: IngestStore) -> None:
    rate = Rate(per_second=1.0, burst=2)
    unknown = await store.authorize("not-a-key", 1, rate)
    assert unknown.source is None and not unknown.allowed
    assert (await store.take_tokens("webhook:zendesk", 2, rate)).allowed
    assert not (await store.take_tokens("webhook:zendesk", 1, rate)).allowed
    assert (await store.take_tokens("webhook:intercom", 1, rate)).allowed  # a bucket of its own


def test_retry_after_is_whole_seconds_and_at_least_one() -> None:
    assert retry_after_header(0.01) == "1"
    assert retry_after_header(1.0) == "1"
    assert retry_after_header(1.2) == "2"


def rate_limited_count() -> float:
    return REGISTRY.get_sample_value("churnwatch_ingest_rejected_requests_total",
                                     {"reason": "rate_limited"}) or 0.0


async def test_the_limit_is_per_key_and_holds_across_instances(infra: Infra) -> None:
    settings = infra.fresh_settings(rate_limit_events_per_second=0.5, rate_limit_burst=3,
                                    admin_token="admin-token")
    before = rate_limited_count()
    async with serving(create_app(settings)) as one, serving(create_app(settings)) as two:
        allowed = await one.post("/v1/batch", json=batch("ok", 3))
        assert allowed.status_code == 200, allowed.text
        # The other instance shares the key's bucket: the burst is spent.
        refused = await two.post("/v1/batch", json=batch("no", 2))
        assert refused.status_code == 429, refused.text
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["Retry-After"] == "4"  # 2 events at 0.5/s
        again = await one.post("/v1/track", json={"writeKey": KEY, "userId": "u", "event": "e",
                                                  "messageId": "no-single"})
        assert again.status_code == 429
        # Another key, even of the same source, has a bucket of its own.
        other = (await one.post("/v1/admin/write-keys", headers=ADMIN,
                                json={"source": "bootstrap"})).json()["key"]
        assert (await two.post("/v1/batch", json=batch("other", 3, key=other))).status_code == 200
        metrics = (await one.get("/metrics")).text
        assert 'churnwatch_ingest_rejected_requests_total{reason="rate_limited"}' in metrics
    assert rate_limited_count() == before + 2
    usage = await read_topic(settings, Topics.from_settings(settings).usage)
    assert sorted(e.event_id for e in usage) == ["ok-0", "ok-1", "ok-2", "other-0", "other-1", "other-2"]


async def test_signed_webhooks_are_limited_per_source(infra: Infra) -> None:
    settings = infra.fresh_settings(rate_limit_events_per_second=0.5, rate_limit_burst=1,
                                    tickets_webhook_secret="s3cret")

    def signed(ticket_id: str) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"ticket_id": ticket_id, "account_id": "acme", "status": "open",
                             "updated_at": "2026-11-20T10:00:00Z"})
        stamp = str(int(time.time()))
        return body, {"X-Churnwatch-Signature": generic_signature("s3cret", stamp, body),
                      "X-Churnwatch-Signature-Timestamp": stamp}

    async with serving(create_app(settings)) as client:
        body, headers = signed("T-1")
        assert (await client.post("/v1/webhooks/tickets", content=body, headers=headers)).status_code == 200
        body, headers = signed("T-2")
        refused = await client.post("/v1/webhooks/tickets", content=body, headers=headers)
        assert refused.status_code == 429, refused.text
        assert refused.headers["Retry-After"] == "2"
    tickets = await read_topic(settings, Topics.from_settings(settings).tickets)
    assert [e.payload["ticket_id"] for e in tickets] == ["T-1"]
