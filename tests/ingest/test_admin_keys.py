"""The write-key admin API: issue, list, revoke (refused at once), and its own auth."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from services.ingest.app import create_app
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic

ADMIN = {"Authorization": "Bearer admin-secret-token"}


@asynccontextmanager
async def ingest(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as client:
        yield client


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
def admin_settings(infra: Infra) -> Settings:
    return infra.fresh_settings(admin_token="admin-secret-token")


async def test_issue_list_and_revoke(admin_settings: Settings) -> None:
    async with ingest(admin_settings) as client:
        created = await client.post("/v1/admin/write-keys", headers=ADMIN, json={"source": "web-app"})
        assert created.status_code == 201, created.text
        issued = created.json()
        assert issued["source"] == "web-app"
        assert issued["key"].startswith(issued["key_prefix"])
        assert issued["key_id"].startswith("wk_")
        assert issued["created_at"] and issued["revoked_at"] is None
        key = issued["key"]

        track = {"userId": "u", "event": "Signed In", "messageId": "k1"}
        assert (await client.post("/v1/track", headers=basic(key), json=track)).status_code == 200

        listed = await client.get("/v1/admin/write-keys", headers=ADMIN)
        assert listed.status_code == 200
        [mine] = [k for k in listed.json()["write_keys"] if k["key_id"] == issued["key_id"]]
        assert mine == {k: v for k, v in issued.items() if k != "key"}
        assert key not in listed.text  # the secret is shown once, never listed
        assert {k["source"] for k in listed.json()["write_keys"]} == {"web-app", "bootstrap"}

        revoked = await client.delete(f"/v1/admin/write-keys/{issued['key_id']}", headers=ADMIN)
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["revoked_at"] is not None
        again = await client.delete(f"/v1/admin/write-keys/{issued['key_id']}", headers=ADMIN)
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]

        refused = await client.post("/v1/track", headers=basic(key),
                                    json={**track, "messageId": "k2"})
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_write_key"

        unknown = await client.delete("/v1/admin/write-keys/wk_nope", headers=ADMIN)
        assert unknown.status_code == 404
        assert unknown.json()["code"] == "unknown_write_key"

    usage = await read_topic(admin_settings, Topics.from_settings(admin_settings).usage)
    assert [(e.event_id, e.source) for e in usage] == [("k1", "web-app")]


async def test_a_revoked_key_is_refused_by_another_instance_at_once(admin_settings: Settings) -> None:
    async with ingest(admin_settings) as one, ingest(admin_settings) as two:
        issued = (await one.post("/v1/admin/write-keys", headers=ADMIN,
                                 json={"source": "backend"})).json()
        track = {"writeKey": issued["key"], "userId": "u", "event": "e"}
        assert (await two.post("/v1/track", json=track)).status_code == 200
        await one.delete(f"/v1/admin/write-keys/{issued['key_id']}", headers=ADMIN)
        assert (await two.post("/v1/track", json=track)).status_code == 401


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "admin-secret-token"},
     {"Authorization": "Basic " + base64.b64encode(b"admin-secret-token:").decode()}],
    ids=["missing", "wrong", "no-scheme", "basic"],
)
async def test_a_missing_or_wrong_admin_token_is_refused(
    admin_settings: Settings, headers: dict[str, str]
) -> None:
    async with ingest(admin_settings) as client:
        for response in (
            await client.post("/v1/admin/write-keys", headers=headers, json={"source": "x"}),
            await client.get("/v1/admin/write-keys", headers=headers),
            await client.delete("/v1/admin/write-keys/wk_any", headers=headers),
        ):
            assert response.status_code == 401, response.text
            assert response.json()["code"] == "invalid_admin_token"
        listed = await client.get("/v1/admin/write-keys", headers=ADMIN)
        assert [k["source"] for k in listed.json()["write_keys"]] == ["bootstrap"]


async def test_without_an_admin_token_the_admin_api_is_off(settings: Settings) -> None:
    assert settings.admin_token is None
    async with ingest(settings) as client:
        response = await client.post("/v1/admin/write-keys", headers={"Authorization": "Bearer "},
                                     json={"source": "x"})
        assert response.status_code == 404
        assert response.json()["code"] == "admin_disabled"
        assert "CHURNWATCH_ADMIN_TOKEN" in response.json()["message"]


async def test_a_source_is_required(admin_settings: Settings) -> None:
    async with ingest(admin_settings) as client:
        response = await client.post("/v1/admin/write-keys", headers=ADMIN, json={"source": ""})
        assert response.status_code == 400
        assert response.json()["errors"][0]["field"] == "source"
