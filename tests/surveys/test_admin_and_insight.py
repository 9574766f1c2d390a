"""The admin API for survey definitions (auth, validation, lifecycle) and insight by account,
segment and month, on real PostgreSQL and Kafka."""

from __future__ import annotations

import base64

from services.surveys.app import create_app
from services.surveys.store import contacts as contact_store
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.infra import API_AUTH
from tests.surveys.conftest import Surveys
from tests.surveys.support import ADMIN, contacts_known, group, identify, publish, wait_until

WRITE_KEY = {"Authorization": "Basic " + base64.b64encode(b"test-write-key:").decode()}
NPS = {
    "name": "Relationship NPS",
    "survey_type": "nps",
    "question": "How likely are you to recommend us?",
    "cadence_days": 90,
}


async def test_admin_api_is_off_without_a_token(settings: Settings) -> None:
    async with serving(create_app(settings)) as client:
        answer = await client.post("/v1/admin/surveys", json=NPS)
        assert answer.status_code == 404
        assert answer.json()["code"] == "admin_disabled"


async def test_definitions_lifecycle(surveys: Surveys) -> None:
    client = surveys.client
    assert (await client.get("/v1/admin/surveys")).status_code == 401
    wrong = await client.post("/v1/admin/surveys", json=NPS, headers={"Authorization": "Bearer nope"})
    assert (wrong.status_code, wrong.headers["www-authenticate"]) == (401, "Bearer")

    invalid = await surveys.post_admin(
        "/v1/admin/surveys",
        {**NPS, "survey_type": "csat", "cadence_days": -3, "audience": {"arr_tiers": ["platinum"]}},
    )
    assert invalid.status_code == 400
    assert [e["field"] for e in invalid.json()["errors"]] == ["audience.arr_tiers", "cadence_days"]
    assert "configured tiers: low_touch, mid_touch, high_touch" in invalid.json()["message"]

    created = await surveys.post_admin(
        "/v1/admin/surveys",
        {
            **NPS,
            "audience": {
                "plans": ["pro"],
                "lifecycle_stages": ["adoption", "renewal"],
                "arr_tiers": ["high_touch"],
                "roles": ["admin"],
            },
        },
    )
    assert created.status_code == 201, created.text
    survey = created.json()
    assert survey["id"].startswith("sv_") and survey["status"] == "active"
    assert survey["audience"] == {
        "account_ids": [],
        "plans": ["pro"],
        "lifecycle_stages": ["adoption", "renewal"],
        "arr_tiers": ["high_touch"],
        "roles": ["admin"],
    }
    assert (await surveys.get_admin(f"/v1/admin/surveys/{survey['id']}")).json() == survey
    assert [s["id"] for s in (await surveys.get_admin("/v1/admin/surveys")).json()["surveys"]] == [
        survey["id"]
    ]

    headers = {"Authorization": ADMIN["Authorization"]}
    reworded = await client.put(
        f"/v1/admin/surveys/{survey['id']}",
        headers=headers,
        json={**NPS, "question": "Would you recommend us to a colleague?"},
    )
    assert reworded.status_code == 200 and reworded.json()["audience"]["plans"] == []
    # Once invitations exist, the survey's kind is fixed.
    await publish(surveys.settings, identify("u1", email="u1@acme.example"), group("u1", "acme"))

    async def known() -> bool:
        return await contacts_known(surveys.engine, "u1")

    await wait_until(known, 20, "u1's contact")
    assert len((await surveys.scheduler.run_once()).created) == 1
    retyped = await client.put(
        f"/v1/admin/surveys/{survey['id']}",
        headers=headers,
        json={**NPS, "survey_type": "csat", "question": "Satisfied?"},
    )
    assert retyped.status_code == 409
    assert retyped.json()["errors"] == [
        {"field": "survey_type", "message": "cannot change once invitations were sent"}
    ]

    archived = await client.delete(f"/v1/admin/surveys/{survey['id']}", headers=headers)
    assert archived.json()["status"] == "archived"
    surveys.clock.advance(days=365)
    assert (await surveys.scheduler.run_once()).created == []  # archived surveys invite no one
    assert await surveys.sender.run_once() == 1  # ... and its queued invitation is not mailed
    assert surveys.smtp.received == []
    missing = await client.delete("/v1/admin/surveys/sv_missing", headers=headers)
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_survey")


async def submit(
    surveys: Surveys, response_id: str, account: str, survey_type: str, score: int, submitted_at: str
) -> None:
    answer = await surveys.client.post(
        "/v1/responses",
        headers=WRITE_KEY,
        json={
            "response_id": response_id,
            "account_id": account,
            "survey_type": survey_type,
            "score": score,
            "submitted_at": submitted_at,
        },
    )
    assert answer.status_code == 200, answer.text


async def test_insight_by_month_account_and_segment(surveys: Surveys) -> None:
    await publish(
        surveys.settings,
        group(None, "acme", plan="pro", mrr=12_000, lifecycle_stage="renewal"),  # ARR 144k
        group(None, "globex", plan="starter", arr=30_000, lifecycle_stage="adoption"),
        group(None, "initech", plan="Pro"),
    )

    async def facts() -> bool:
        async with surveys.engine.connect() as conn:
            return len(await contact_store.account_traits(conn, ["acme", "globex", "initech"])) == 3

    await wait_until(facts, 20, "account traits")
    for response_id, account, score, when in [
        ("a1", "acme", 10, "2026-09-10T12:00:00Z"),
        ("a2", "acme", 9, "2026-09-20T12:00:00Z"),
        ("g1", "globex", 7, "2026-09-15T12:00:00Z"),
        ("a3", "acme", 2, "2026-11-02T12:00:00Z"),
        ("g2", "globex", 10, "2026-11-05T12:00:00Z"),
        ("i1", "initech", 8, "2026-11-06T12:00:00Z"),
        ("i2", "initech", 4, "2026-11-07T12:00:00Z"),
    ]:
        await submit(surveys, response_id, account, "nps", score, when)
    await submit(surveys, "c1", "acme", "csat", 5, "2026-11-03T12:00:00Z")
    await submit(surveys, "c2", "globex", "csat", 3, "2026-11-03T12:00:00Z")

    by_month = (await surveys.client.get("/v1/insights/nps", headers=API_AUTH)).json()
    assert by_month["overall"] == {
        "responses": 7,
        "nps": 14.29,
        "promoters": 3,
        "passives": 2,
        "detractors": 2,
    }
    assert by_month["period"] == {"from": "2026-09-10T12:00:00Z", "to": "2026-11-07T12:00:00Z"}
    assert [
        (g["key"], g["responses"], g["nps"], g["change"], g["change_from"]) for g in by_month["groups"]
    ] == [("2026-09", 3, 66.67, None, None), ("2026-11", 4, -25.0, -91.67, "2026-09")]
    assert by_month["groups"][1]["period"] == {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}

    november = (
        await surveys.client.get(
            "/v1/insights/nps",
            params={"group_by": "plan", "since": "2026-11-01T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
            headers=API_AUTH,
        )
    ).json()
    # Plans as sent ("pro" and "Pro" are different strings; audiences match them case-insensitively).
    assert {g["key"]: (g["responses"], g["nps"]) for g in november["groups"]} == {
        "Pro": (2, -50.0),
        "pro": (1, -100.0),
        "starter": (1, 100.0),
    }
    assert november["period"] == {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}

    tiers = (await surveys.client.get("/v1/insights/nps", params={"group_by": "arr_tier"},
                                      headers=API_AUTH)).json()
    assert {g["key"]: g["responses"] for g in tiers["groups"]} == {"high_touch": 3, "mid_touch": 2, None: 2}
    stages = (await surveys.client.get("/v1/insights/nps", params={"group_by": "lifecycle_stage"},
                                       headers=API_AUTH)).json()
    assert [(g["key"], g["nps"]) for g in stages["groups"]] == [
        ("renewal", 33.33),
        ("adoption", 50.0),
        (None, -50.0),
    ]
    accounts = (await surveys.client.get("/v1/insights/nps", params={"group_by": "account"},
                                         headers=API_AUTH)).json()
    assert [(g["key"], g["responses"]) for g in accounts["groups"]] == [
        ("acme", 3),
        ("globex", 2),
        ("initech", 2),
    ]
    one = (await surveys.client.get("/v1/insights/nps", params={"account_id": "globex"},
                                    headers=API_AUTH)).json()
    assert one["overall"]["nps"] == 50.0

    csat = (await surveys.client.get("/v1/insights/csat", params={"group_by": "account"},
                                     headers=API_AUTH)).json()
    assert csat["overall"] == {"responses": 2, "csat": 50.0, "satisfied": 1}
    empty = (await surveys.client.get("/v1/insights/ces", headers=API_AUTH)).json()
    assert (empty["overall"], empty["groups"], empty["period"]) == (
        {"responses": 0, "ces_mean": None, "easy_share": None, "easy": 0},
        [],
        {"from": None, "to": None},
    )

    bad = await surveys.client.get("/v1/insights/nps", params={"group_by": "colour"}, headers=API_AUTH)
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "query.group_by"
    backwards = await surveys.client.get(
        "/v1/insights/nps", params={"since": "2026-12-01T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
        headers=API_AUTH,
    )
    assert backwards.status_code == 400
    assert (await surveys.client.get("/v1/insights/xps", headers=API_AUTH)).status_code == 400
