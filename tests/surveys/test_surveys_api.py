"""Surveys against a real Kafka broker and PostgreSQL: acknowledged means stored AND on Kafka."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from deploy.local.processes import free_port
from services.surveys.app import create_app
from services.surveys.store.responses import survey_responses
from shared.db import create_engine
from shared.events import Envelope, EventType
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.support.apps import serving
from tests.support.infra import API_AUTH, Infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess
from tests.surveys.support import wait_ready

KEY = "test-write-key"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}


def response(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"response_id": "r1", "account_id": "acme", "user_id": "u1",
                            "survey_type": "nps", "score": 3, "comment": "Too slow",
                            "submitted_at": "2026-11-20T10:00:00+01:00"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as http:
        await wait_ready(http)
        yield http


async def stored(settings: Settings) -> list[dict[str, Any]]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(select(survey_responses).order_by(survey_responses.c.response_id))
            return [dict(row._mapping) for row in rows]
    finally:
        await engine.dispose()


async def published(settings: Settings) -> list[Envelope]:
    return await read_topic(settings, Topics.from_settings(settings).survey_responses)


async def test_a_response_is_stored_and_published(settings: Settings, client: httpx.AsyncClient) -> None:
    answer = await client.post("/v1/responses", headers=BASIC, json=response())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"response_id": "r1", "revision": 1, "status": "accepted",
                             "account_id": "acme", "mapped": True}

    [row] = await stored(settings)
    assert (row["account_id"], row["user_id"], row["survey_type"], row["score"], row["comment"],
            row["revision"]) == ("acme", "u1", "nps", 3, "Too slow", 1)
    assert row["submitted_at"].isoformat() == "2026-11-20T09:00:00+00:00"

    [event] = await published(settings)
    assert event.event_id == "survey-response:r1:1"
    assert event.type is EventType.SURVEY_RESPONSE
    assert (event.account_id, event.user_id, event.source) == ("acme", "u1", "bootstrap")
    assert event.occurred_at == row["submitted_at"]
    assert event.received_at == row["received_at"]
    assert event.payload == {"response_id": "r1", "survey_type": "nps", "score": 3, "comment": "Too slow",
                             "revision": 1, "channel": "api", "campaign_id": None, "ticket_id": None}

    # Bearer works as well as Basic; a CSAT response goes to the same topic.
    bearer = await client.post("/v1/responses", headers={"Authorization": f"Bearer {KEY}"},
                               json=response(response_id="c1", survey_type="csat", score=5, user_id=...))
    assert bearer.status_code == 200, bearer.text
    assert {e.event_id for e in await published(settings)} == {"survey-response:r1:1",
                                                              "survey-response:c1:1"}

    assert (await client.get("/readyz")).json() == {"status": "ready",
                                                    "checks": {"database": True, "kafka": True}}
    metrics = (await client.get("/metrics")).text
    assert 'churnwatch_surveys_responses_total{channel="api",status="new",survey_type="nps"}' in metrics
    assert 'churnwatch_surveys_responses_total{channel="api",status="new",survey_type="csat"}' in metrics


async def test_an_amendment_is_a_new_revision_of_the_same_response(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    first = await client.post("/v1/responses", headers=BASIC, json=response(score=3, comment=...))
    assert first.json()["revision"] == 1
    # Delighted-style: the comment arrives later, and the respondent changed their mind.
    amended = await client.post("/v1/responses", headers=BASIC,
                                json=response(score=9, comment="Support fixed it"))
    assert amended.status_code == 200, amended.text
    assert amended.json() == {"response_id": "r1", "revision": 2, "status": "accepted",
                              "account_id": "acme", "mapped": True}

    [row] = await stored(settings)
    assert (row["score"], row["comment"], row["revision"]) == (9, "Support fixed it", 2)
    events = {e.event_id: e for e in await published(settings)}
    assert set(events) == {"survey-response:r1:1", "survey-response:r1:2"}
    assert events["survey-response:r1:1"].payload["score"] == 3
    assert events["survey-response:r1:2"].payload == {
        "response_id": "r1", "survey_type": "nps", "score": 9, "comment": "Support fixed it",
        "revision": 2, "channel": "api", "campaign_id": None, "ticket_id": None}

    nps = (await client.get("/v1/accounts/acme/nps", headers=API_AUTH)).json()
    assert (nps["responses"], nps["promoters"], nps["detractors"], nps["nps"]) == (1, 1, 0, 100.0)

    # A response id belongs to one account and one survey type for good.
    moved = await client.post("/v1/responses", headers=BASIC,
                              json=response(account_id="globex", score=9, comment="Support fixed it"))
    assert moved.status_code == 409
    assert moved.json()["code"] == "response_conflict"
    assert [e["field"] for e in moved.json()["errors"]] == ["account_id"]
    assert [(r["account_id"], r["revision"]) for r in await stored(settings)] == [("acme", 2)]
    assert len(await published(settings)) == 2


async def test_an_identical_repost_changes_nothing(settings: Settings, client: httpx.AsyncClient) -> None:
    first = await client.post("/v1/responses", headers=BASIC, json=response())
    again = await client.post("/v1/responses", headers=BASIC,
                              json=response(submitted_at="2026-11-20T09:00:00Z"))  # same instant
    assert first.json()["status"] == "accepted"
    assert again.status_code == 200, again.text
    assert again.json() == {"response_id": "r1", "revision": 1, "status": "unchanged",
                            "account_id": "acme", "mapped": True}

    [row] = await stored(settings)
    assert row["revision"] == 1
    # Re-published in case the first ack was lost: the very same event, which consumers dedupe.
    first_event, second_event = await published(settings)
    assert first_event == second_event
    assert first_event.event_id == "survey-response:r1:1"
    metrics = (await client.get("/metrics")).text
    assert 'churnwatch_surveys_responses_total{channel="api",status="unchanged",survey_type="nps"}' in metrics


async def test_concurrent_submissions_of_one_id_get_distinct_revisions(
    settings: Settings, client: httpx.AsyncClient
) -> None:
    answers = await asyncio.gather(*(
        client.post("/v1/responses", headers=BASIC, json=response(response_id="race", score=score))
        for score in (0, 4, 8, 10)
    ))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    revisions = sorted(a.json()["revision"] for a in answers)
    assert revisions == [1, 2, 3, 4]
    assert sorted(a.json()["status"] for a in answers) == ["accepted"] * 4

    [row] = await stored(settings)
    assert row["revision"] == 4
    events = {e.event_id: e for e in await published(settings)}
    assert set(events) == {f"survey-response:race:{n}" for n in (1, 2, 3, 4)}
    assert events["survey-response:race:4"].payload["score"] == row["score"]


async def test_account_nps_counts_period_and_filters(settings: Settings, client: httpx.AsyncClient) -> None:
    for response_id, account, survey_type, score, submitted in [
        ("a1", "acme", "nps", 10, "2026-10-05T12:00:00Z"),
        ("a2", "acme", "nps", 9, "2026-11-02T12:00:00Z"),
        ("a3", "acme", "nps", 7, "2026-11-10T12:00:00Z"),
        ("a4", "acme", "nps", 2, "2026-11-20T12:00:00Z"),
        ("a5", "acme", "csat", 1, "2026-11-21T12:00:00Z"),  # not an NPS answer
        ("g1", "globex", "nps", 0, "2026-11-03T12:00:00Z"),  # another account
    ]:
        answer = await client.post("/v1/responses", headers=BASIC, json=response(
            response_id=response_id, account_id=account, survey_type=survey_type, score=score,
            submitted_at=submitted))
        assert answer.status_code == 200, answer.text

    everything = (await client.get("/v1/accounts/acme/nps", headers=API_AUTH)).json()
    assert everything == {
        "account_id": "acme", "nps": 25.0, "responses": 4, "promoters": 2, "passives": 1,
        "detractors": 1,
        "period": {"from": "2026-10-05T12:00:00Z", "to": "2026-11-20T12:00:00Z"},
    }

    november = (await client.get("/v1/accounts/acme/nps", params={
        "since": "2026-11-01T00:00:00Z", "until": "2026-11-20T12:00:00Z"}, headers=API_AUTH)).json()
    # until is exclusive, so consecutive periods never count a response twice.
    assert (november["responses"], november["promoters"], november["passives"], november["nps"]) == (
        2, 1, 1, 50.0)
    assert november["period"] == {"from": "2026-11-01T00:00:00Z", "to": "2026-11-20T12:00:00Z"}

    since_only = (await client.get("/v1/accounts/acme/nps", params={"since": "2026-11-15T00:00:00Z"},
                                   headers=API_AUTH)).json()
    assert (since_only["nps"], since_only["period"]) == (
        -100.0, {"from": "2026-11-15T00:00:00Z", "to": "2026-11-20T12:00:00Z"})

    nobody = (await client.get("/v1/accounts/initech/nps", headers=API_AUTH)).json()
    assert nobody == {"account_id": "initech", "nps": None, "responses": 0, "promoters": 0,
                      "passives": 0, "detractors": 0, "period": {"from": None, "to": None}}

    backwards = await client.get("/v1/accounts/acme/nps", params={
        "since": "2026-11-20T00:00:00Z", "until": "2026-11-01T00:00:00Z"}, headers=API_AUTH)
    assert backwards.status_code == 400
    assert backwards.json()["errors"] == [{"field": "until", "message": "until must be later than since"}]
    naive = await client.get("/v1/accounts/acme/nps", params={"since": "2026-11-01T00:00:00"},
                             headers=API_AUTH)
    assert naive.status_code == 400
    assert naive.json()["errors"][0]["field"] == "query.since"


@pytest.mark.parametrize(
    ("content", "headers", "status", "code", "field", "names"),
    [
        (b'{"response_id": "r1", ', BASIC, 400, "invalid_json", None, "not valid JSON"),
        (orjson.dumps(response(response_id=...)), BASIC, 400, "invalid_request", "response_id",
         "response_id: Field required"),
        (orjson.dumps(response(score=11)), BASIC, 400, "invalid_request", "score",
         "nps scores are integers from 0 to 10, got 11"),
        (orjson.dumps(response(survey_type="csat", score=0)), BASIC, 400, "invalid_request", "score",
         "csat scores are integers from 1 to 5, got 0"),
        (orjson.dumps(response(survey_type="abc")), BASIC, 400, "invalid_request", "survey_type",
         "survey_type: Input should be 'nps', 'csat' or 'ces'"),
        (orjson.dumps(response(score="9")), BASIC, 400, "invalid_request", "score",
         "score: Input should be a valid integer"),
        (b"{" + b" " * 600_000 + b"}", BASIC, 400, "payload_too_large", None, "limit is 512000 bytes"),
        (orjson.dumps(response()), {"Authorization": "Bearer wrong"}, 401, "invalid_write_key", None,
         "unknown or revoked"),
        (orjson.dumps(response()), {}, 401, "missing_write_key", None, "no write key"),
    ],
    ids=["malformed-json", "no-response-id", "nps-11", "csat-0", "type-abc", "score-string",
         "oversized-body", "wrong-key", "no-key"],
)
async def test_bad_input_is_refused_and_nothing_is_kept(
    settings: Settings, client: httpx.AsyncClient, content: bytes, headers: dict[str, str],
    status: int, code: str, field: str | None, names: str,
) -> None:
    answer = await client.post("/v1/responses", content=content,
                               headers={"Content-Type": "application/json", **headers})
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code
    assert names in body["message"]
    if field is not None:
        assert [e["field"] for e in body["errors"]] == [field]
    assert await stored(settings) == []
    assert await published(settings) == []
    metrics = (await client.get("/metrics")).text
    assert f'churnwatch_surveys_rejections_total{{reason="{code}"}}' in metrics


async def test_kafka_unreachable_answers_503_and_keeps_nothing(infra: Infra) -> None:
    settings = infra.fresh_settings(produce_timeout_seconds=2.0,
                                    kafka_bootstrap_servers=f"127.0.0.1:{free_port()}")
    live = settings.model_copy(update={"kafka_bootstrap_servers": infra.kafka.bootstrap_servers})
    await ensure_topics(live)  # so "nothing published" is checked on a topic that exists
    async with serving(create_app(settings)) as http:
        answer = await http.post("/v1/responses", headers=BASIC, json=response())
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "kafka_unavailable"
        assert "nothing was stored" in answer.json()["message"]
        assert answer.headers["Retry-After"] == "5"
        ready = await http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": True, "kafka": False}
    assert await stored(settings) == []
    assert await published(live) == []


async def test_runs_as_a_process_and_stops_cleanly(settings: Settings, tmp_path: Path) -> None:
    process = ServiceProcess("surveys", settings, free_port(), tmp_path)
    await asyncio.to_thread(process.start)
    try:
        async with httpx.AsyncClient(base_url=process.base_url, auth=(KEY, "")) as http:
            answer = await http.post("/v1/responses", json=response())
            assert answer.status_code == 200, answer.text
            assert answer.json()["status"] == "accepted"
    finally:
        await asyncio.to_thread(process.stop)
    assert process.process is not None and process.process.returncode == 0
    assert [r["response_id"] for r in await stored(settings)] == ["r1"]
    assert [e.event_id for e in await published(settings)] == ["survey-response:r1:1"]
