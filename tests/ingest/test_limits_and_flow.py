"""Segment's limits at their edges, gzip, bounded memory under overload, the metrics an
operator reads, and dedupe across a real ingest process being killed and replaced."""

from __future__ import annotations

import asyncio
import gzip
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from deploy.local.processes import free_port
from services.ingest.app import create_app
from services.ingest.validation import Limits, validate_batch, validate_single
from shared.http import ApiError
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess
from tests.support.stuck_broker import stuck_broker
from tests.support.waiting import events_awaiting_acks, eventually

KEY = "test-write-key"
SETTINGS_DEFAULTS = Settings.model_fields
LIMITS = Limits(max_event_bytes=SETTINGS_DEFAULTS["max_event_bytes"].default,
                max_batch_items=SETTINGS_DEFAULTS["max_batch_items"].default)


def track(message_id: str, **extra: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "u", "event": "e", "messageId": message_id,
            "context": {"groupId": "acme"}, **extra}


def padded_to(size: int) -> dict[str, Any]:
    """A track event whose JSON encoding is exactly `size` bytes."""
    event = track("sized", properties={"pad": ""})
    event["properties"]["pad"] = "x" * (size - len(orjson.dumps(event)))
    assert len(orjson.dumps(event)) == size
    return event


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as http:
        yield http


async def usage_ids(settings: Settings) -> list[str]:
    return sorted(e.event_id for e in await read_topic(settings, Topics.from_settings(settings).usage))


def test_the_default_limits_are_segments_as_its_clients_count_them() -> None:
    # 32 KB and 500 KB in binary units, as analytics-python checks them (32 << 10).
    assert SETTINGS_DEFAULTS["max_event_bytes"].default == 32_768
    assert SETTINGS_DEFAULTS["max_request_bytes"].default == 512_000


def test_an_event_of_exactly_32_kb_passes_one_byte_more_does_not() -> None:
    assert len(validate_single(padded_to(32_768), "track", LIMITS)) == 1
    with pytest.raises(ApiError) as info:
        validate_single(padded_to(32_769), "track", LIMITS)
    assert info.value.errors == [{"field": "body", "message": "event is 32769 bytes; the limit is 32768"}]
    # In a batch too, whether or not the body as a whole is small enough to skip measuring.
    with pytest.raises(ApiError) as info:
        validate_batch({"batch": [track("a"), padded_to(32_769)]}, LIMITS, body_bytes=40_000)
    assert info.value.errors[0]["field"] == "batch[1]"


def test_message_id_up_to_100_characters() -> None:
    assert validate_single(track("m" * 100), "track", LIMITS)[0].message.message_id == "m" * 100
    with pytest.raises(ApiError) as info:
        validate_single(track("m" * 101), "track", LIMITS)
    assert info.value.errors[0]["field"] == "messageId"
    assert "100" in info.value.errors[0]["message"]


async def test_2500_items_pass_2501_do_not(settings: Settings, client: httpx.AsyncClient) -> None:
    full = {"writeKey": KEY, "batch": [track(f"i{n}") for n in range(2_500)]}
    response = await client.post("/v1/batch", json=full)
    assert response.status_code == 200, response.text
    over = {"writeKey": KEY, "batch": [track(f"o{n}") for n in range(2_501)]}
    refused = await client.post("/v1/batch", json=over)
    assert refused.status_code == 400
    assert refused.json()["errors"] == [{"field": "batch", "message": "2501 items; the limit is 2500"}]
    ids = await usage_ids(settings)
    assert len(ids) == 2_500 and not any(i.startswith("o") for i in ids)


async def test_500_kb_per_request_plain_or_gzip(settings: Settings, client: httpx.AsyncClient) -> None:
    # 16 events of 30,000 bytes: under both limits (480 KB of events in a 512,000-byte body).
    near = orjson.dumps({"writeKey": KEY, "batch": [{**padded_to(30_000), "messageId": f"n{n}"}
                                                    for n in range(16)]})
    assert 480_000 < len(near) <= 512_000
    assert (await client.post("/v1/batch", content=near)).status_code == 200
    over = orjson.dumps({"writeKey": KEY, "batch": [{**padded_to(30_000), "messageId": f"x{n}"}
                                                    for n in range(18)]})
    refused = await client.post("/v1/batch", content=over)
    assert refused.status_code == 400 and refused.json()["code"] == "payload_too_large"
    # Small on the wire, too large decoded: the limit is on the decoded body.
    bomb = gzip.compress(over)
    assert len(bomb) < 20_000
    refused = await client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
    assert refused.status_code == 400 and refused.json()["code"] == "payload_too_large"
    garbage = await client.post("/v1/batch", content=b"\x1f\x8bnot gzip at all",
                                headers={"Content-Encoding": "gzip"})
    assert garbage.status_code == 400 and garbage.json()["code"] == "invalid_gzip"
    zipped = gzip.compress(orjson.dumps({"writeKey": KEY, "batch": [track("gz1"), track("gz2")]}))
    accepted = await client.post("/v1/batch", content=zipped, headers={"Content-Encoding": "gzip"})
    assert accepted.status_code == 200, accepted.text
    assert await usage_ids(settings) == sorted([*(f"n{n}" for n in range(16)), "gz1", "gz2"])


async def test_bodies_in_memory_are_bounded_under_overload(infra: Infra) -> None:
    """With Kafka stuck, a request holds its body; the next one that would not fit is refused."""
    body = orjson.dumps({"writeKey": KEY, "batch": [track(f"b{n}", properties={"pad": "y" * 200})
                                                    for n in range(100)]})
    assert 25_000 < len(body) < 40_000
    async with stuck_broker() as port:
        settings = infra.fresh_settings(kafka_bootstrap_servers=f"127.0.0.1:{port}",
                                        produce_timeout_seconds=5.0, max_request_bytes_in_memory=40_000)
        async with serving(create_app(settings)) as http:
            waiting = asyncio.create_task(http.post("/v1/batch", content=body))
            try:
                # Its events are handed to the producer: it holds its body, waiting for Kafka.
                await eventually(lambda: events_awaiting_acks() == 100, "the first request waits for acks")
                refused = await http.post("/v1/batch", content=body)
                # Refused without waiting for Kafka: the first request is still waiting.
                assert not waiting.done()
                assert refused.status_code == 503, refused.text
                assert refused.json()["code"] == "overloaded"
                assert refused.headers["Retry-After"] == "1"
                # A gzip body reserves the whole request limit, whatever its size on the wire.
                zipped = await http.post("/v1/batch", content=gzip.compress(body),
                                         headers={"Content-Encoding": "gzip"})
                assert zipped.status_code == 503 and zipped.json()["code"] == "overloaded"
            finally:
                first = await waiting  # never left running, whatever failed above
            assert first.json()["code"] == "kafka_unavailable"
            # Released once answered: the same request is now only refused for Kafka's sake.
            after = await http.post("/v1/batch", content=body)
            assert after.json()["code"] == "kafka_unavailable"


ACCEPTED = "churnwatch_ingest_events_accepted_total"


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_metrics_an_operator_reads(settings: Settings, client: httpx.AsyncClient) -> None:
    names = {
        "requests_ok": ("churnwatch_http_requests_total",
                        {"service": "ingest", "method": "POST", "route": "/v1/batch", "status": "200"}),
        "requests_401": ("churnwatch_http_requests_total",
                         {"service": "ingest", "method": "POST", "route": "/v1/track", "status": "401"}),
        "accepted_track": (ACCEPTED, {"type": "track", "source": "bootstrap"}),
        "accepted_group": (ACCEPTED, {"type": "group", "source": "bootstrap"}),
        "duplicates": ("churnwatch_ingest_duplicates_dropped_total", {"type": "track"}),
        "invalid": ("churnwatch_ingest_rejected_requests_total", {"reason": "invalid_request"}),
        "bad_key": ("churnwatch_ingest_rejected_requests_total", {"reason": "invalid_write_key"}),
        "latency": ("churnwatch_produce_duration_seconds_count", {"service": "ingest"}),
        "bytes": ("churnwatch_ingest_request_bytes_total", {}),
    }
    before = {k: sample(*v) for k, v in names.items()}
    body = orjson.dumps({"writeKey": KEY, "batch": [
        track("mt1"), track("mt2"), {"type": "group", "userId": "u", "groupId": "acme", "messageId": "mg1"}]})
    assert (await client.post("/v1/batch", content=body)).status_code == 200
    assert (await client.post("/v1/batch", content=orjson.dumps(
        {"writeKey": KEY, "batch": [track("mt1")]}))).status_code == 200
    invalid = await client.post("/v1/batch", json={"writeKey": KEY, "batch": [{"type": "track"}]})
    assert invalid.status_code == 400
    assert (await client.post("/v1/track", json={"writeKey": "nope", **track("x")})).status_code == 401
    after = {k: sample(*v) for k, v in names.items()}
    delta = {k: after[k] - before[k] for k in names}
    assert delta == {"requests_ok": 2, "requests_401": 1, "accepted_track": 2, "accepted_group": 1,
                     "duplicates": 1, "invalid": 1, "bad_key": 1, "latency": 1,
                     "bytes": delta["bytes"]}
    assert delta["bytes"] >= len(body)
    exposition = (await client.get("/metrics")).text
    for name, _ in names.values():
        assert name.removesuffix("_count") in exposition, name
    assert 'churnwatch_produce_duration_seconds_bucket{le="0.01",service="ingest"}' in exposition


async def test_dedupe_survives_a_killed_ingest_process(infra: Infra) -> None:
    """Ids live in PostgreSQL: a replacement process drops what the killed one accepted."""
    settings = infra.fresh_settings()
    batch = {"writeKey": KEY, "batch": [track(f"r{n}") for n in range(50)]}
    retry = {"writeKey": KEY, "batch": [track(f"r{n}") for n in range(25, 75)]}
    with tempfile.TemporaryDirectory() as logs:
        first = ServiceProcess("ingest", settings, free_port(), Path(logs)).start()
        try:
            async with httpx.AsyncClient(base_url=first.base_url) as http:
                assert (await http.post("/v1/batch", json=batch)).status_code == 200
        finally:
            first.kill()  # no graceful anything
        second = ServiceProcess("ingest", settings, free_port(), Path(logs)).start()
        try:
            async with httpx.AsyncClient(base_url=second.base_url) as http:
                response = await http.post("/v1/batch", json=retry)
                assert response.status_code == 200, response.text
        finally:
            second.stop()
    ids = await usage_ids(settings)
    assert ids == sorted(f"r{n}" for n in range(75))
