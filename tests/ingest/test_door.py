"""Validation at the door (issue 17): a NUL anywhere, or an event time far from now, is a 400
naming the field, and nothing of the request reaches Kafka."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from services.ingest.app import create_app
from shared.settings import Settings
from shared.topics import Topics
from tests.ingest.test_helpdesk_translation import ZENDESK_CREATED
from tests.ingest.test_helpdesk_webhooks import ZENDESK_SECRET, zendesk_headers
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic, wait_for_events

KEY = "test-write-key"


@pytest.fixture
def settings(infra: Infra) -> Settings:
    return infra.fresh_settings(zendesk_webhook_secret=ZENDESK_SECRET)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as http:
        yield http


def fields(response: httpx.Response) -> list[str]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["code"] == "invalid_request"
    return [error["field"] for error in body["errors"]]


async def post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> httpx.Response:
    # Sent as text, as clients send it: json.dumps writes NUL as the escape \u0000.
    return await client.post(path, content=orjson.dumps({"writeKey": KEY, **body}),
                             headers={"Content-Type": "application/json"})


async def nothing_published(settings: Settings) -> bool:
    topics = Topics.from_settings(settings)
    return not await read_topic(settings, topics.usage) and not await read_topic(settings, topics.traits)


async def test_nul_in_a_nested_trait_is_refused(settings: Settings, client: httpx.AsyncClient) -> None:
    response = await post(client, "/v1/group", {"userId": "u1", "groupId": "acct-x",
                                                "traits": {"name": "Acme\u0000",
                                                           "address": {"city": ["ok", "Ber\u0000lin"]}}})
    assert sorted(fields(response)) == ["traits.address.city[1]", "traits.name"]
    assert "NUL" in response.json()["errors"][0]["message"]
    assert await nothing_published(settings)


@pytest.mark.parametrize("field", ["userId", "groupId", "messageId"])
async def test_nul_in_an_id_is_a_400_not_a_500(client: httpx.AsyncClient, field: str) -> None:
    body = {"userId": "u1", "groupId": "acct-x", "messageId": "m1", field: "x\u0000y"}
    assert fields(await post(client, "/v1/group", body)) == [field]


async def test_nul_in_alias_previous_id(client: httpx.AsyncClient) -> None:
    assert fields(await post(client, "/v1/alias", {"userId": "u1", "previousId": "\u0000"})) == ["previousId"]


async def test_nul_in_a_dict_key_is_refused(client: httpx.AsyncClient) -> None:
    response = await post(client, "/v1/track", {"userId": "u1", "event": "Built",
                                                "context": {"bad\u0000key": 1}})
    assert fields(response) == ["context.bad\\u0000key"]
    assert "key" in response.json()["errors"][0]["message"]


async def test_a_batch_names_the_item(settings: Settings, client: httpx.AsyncClient) -> None:
    clean = {"type": "track", "userId": "u1", "event": "Built"}
    batch = [clean, clean, clean, {**clean, "properties": {"name": "Acme\u0000"}}]
    assert fields(await post(client, "/v1/batch", {"batch": batch})) == ["batch[3].properties.name"]
    assert await nothing_published(settings)


@pytest.mark.parametrize("stamp", ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "1900-01-01T00:00:00Z"])
async def test_timestamps_far_from_now_are_refused(settings: Settings, client: httpx.AsyncClient,
                                                   stamp: str) -> None:
    response = await post(client, "/v1/track", {"userId": "u1", "event": "Built", "timestamp": stamp})
    assert fields(response) == ["timestamp"]
    assert "1826 days before and 24 hours after" in response.json()["errors"][0]["message"]
    clean = {"type": "track", "userId": "u1", "event": "Built"}
    batch = [clean, {**clean, "sentAt": stamp}, {**clean, "originalTimestamp": stamp}]
    assert fields(await post(client, "/v1/batch", {"batch": batch})) == [
        "batch[1].sentAt", "batch[2].originalTimestamp"]
    assert fields(await post(client, "/v1/batch", {"batch": [clean], "sentAt": stamp})) == ["sentAt"]
    assert await nothing_published(settings)


async def test_times_inside_the_window_are_accepted(settings: Settings, client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    inside = [now - timedelta(days=1800), now + timedelta(hours=23)]
    batch = [{"type": "track", "userId": "u1", "event": "Built", "messageId": f"m{n}",
              "timestamp": at.isoformat()} for n, at in enumerate(inside)]
    response = await post(client, "/v1/batch", {"batch": batch})
    assert response.status_code == 200, response.text
    events = await wait_for_events(settings, Topics.from_settings(settings).usage, 2)
    assert sorted(e.event_id for e in events) == ["m0", "m1"]


async def test_window_is_configurable(infra: Infra) -> None:
    settings = infra.fresh_settings(max_event_age_days=1, max_event_future_hours=1)
    async with serving(create_app(settings)) as client:
        two_days_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat()
        response = await post(client, "/v1/track", {"userId": "u1", "event": "Built",
                                                    "timestamp": two_days_ago})
        assert fields(response) == ["timestamp"]


async def test_helpdesk_webhook_refuses_nul_and_far_times(settings: Settings,
                                                          client: httpx.AsyncClient) -> None:
    with_nul: dict[str, Any] = copy.deepcopy(ZENDESK_CREATED)
    with_nul["detail"]["subject"] = "CSV\u0000 export"
    body = orjson.dumps(with_nul)
    response = await client.post("/v1/webhooks/zendesk", content=body, headers=zendesk_headers(body))
    assert fields(response) == ["detail.subject"]

    far: dict[str, Any] = copy.deepcopy(ZENDESK_CREATED)
    far["detail"]["updated_at"] = "9999-12-31T23:59:59Z"
    body = orjson.dumps(far)
    response = await client.post("/v1/webhooks/zendesk", content=body, headers=zendesk_headers(body))
    assert fields(response) == ["occurred_at"]
    assert not await read_topic(settings, Topics.from_settings(settings).tickets)
