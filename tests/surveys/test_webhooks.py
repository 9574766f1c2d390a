"""Delighted and Typeform webhooks and unmapped responses, on real Kafka and PostgreSQL:
signed deliveries only, one response per response id however often it is amended or
replayed, and a respondent mapped explicitly (hidden field, contact) or not at all."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from services.surveys.app import create_app
from services.surveys.store import contacts as contact_store
from services.surveys.store.responses import survey_responses
from services.surveys.vendors.signatures import delighted_signature, typeform_signature
from shared.events import Envelope
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.infra import API_AUTH
from tests.support.kafka import read_topic
from tests.surveys.conftest import DELIGHTED_KEY, TYPEFORM_SECRET, Surveys
from tests.surveys.support import group, identify, publish, wait_until
from tests.surveys.test_vendor_payloads import comment_answer, delighted_event, form_response, nps_answer

WRITE_KEY = {"Authorization": "Basic " + base64.b64encode(b"test-write-key:").decode()}


async def rows(surveys: Surveys) -> list[dict[str, Any]]:
    async with surveys.engine.connect() as conn:
        result = await conn.execute(select(survey_responses).order_by(survey_responses.c.response_id))
        return [dict(row._mapping) for row in result]


async def published(surveys: Surveys) -> list[Envelope]:
    return await read_topic(surveys.settings, Topics.from_settings(surveys.settings).survey_responses)


async def post_delighted(surveys: Surveys, body: dict[str, Any], key: str = DELIGHTED_KEY) -> httpx.Response:
    raw = orjson.dumps(body)
    return await surveys.client.post(
        "/v1/webhooks/delighted",
        content=raw,
        headers={
            "Content-Type": "application/json",
            "X-Delighted-Webhook-Signature": delighted_signature(key, raw),
        },
    )


async def post_typeform(
    surveys: Surveys, body: dict[str, Any], secret: str = TYPEFORM_SECRET
) -> httpx.Response:
    raw = orjson.dumps(body)
    return await surveys.client.post(
        "/v1/webhooks/typeform",
        content=raw,
        headers={"Content-Type": "application/json", "Typeform-Signature": typeform_signature(secret, raw)},
    )


async def test_delighted_response_is_kept_unmapped_then_mapped_and_amended_once(surveys: Surveys) -> None:
    created = await post_delighted(surveys, delighted_event())
    assert created.status_code == 200, created.text
    assert created.json() == {
        "status": "accepted",
        "response_id": "delighted:8736452",
        "revision": 1,
        "account_id": None,
        "mapped": False,
    }
    [row] = await rows(surveys)
    assert (row["account_id"], row["respondent_email"], row["score"]) == (None, "jane@acme.example", 3)
    assert await published(surveys) == []  # scoring cannot use an answer without an account
    insight = (await surveys.client.get("/v1/insights/nps", headers=API_AUTH)).json()
    assert (insight["overall"]["responses"], insight["unmapped_responses"]) == (1, 1)  # kept and counted
    unmapped = (await surveys.get_admin("/v1/admin/responses/unmapped")).json()
    assert unmapped["unmapped"] == 1 and unmapped["responses"][0]["respondent_email"] == "jane@acme.example"

    # Jane's identify arrives: her email is known, her account is not yet, so still unmapped.
    await publish(surveys.settings, identify("u-jane", email="jane@acme.example"))

    async def contact() -> bool:
        async with surveys.engine.connect() as conn:
            return await contact_store.load_contact(conn, "u-jane") is not None
    await wait_until(contact, 20, "Jane's contact")
    assert [r["account_id"] for r in await rows(surveys)] == [None]
    # Her group call arrives: the consumer maps the response and publishes it.
    await publish(surveys.settings, group("u-jane", "acme"))

    async def mapped() -> bool:
        return len(await published(surveys)) == 1

    await wait_until(mapped, 20, "the mapped response on Kafka")
    [event] = await published(surveys)
    assert (event.event_id, event.account_id, event.source, event.payload["channel"]) == (
        "survey-response:delighted:8736452:1",
        "acme",
        "delighted",
        "delighted",
    )
    [row] = await rows(surveys)
    assert (row["account_id"], row["mapped_by"], row["revision"]) == ("acme", "email", 1)

    # The comment arrives with .updated: the same response, revision 2.
    updated = await post_delighted(
        surveys,
        delighted_event(
            "survey_response.updated", comment="Competitor X does this better", updated_at=1795425900
        ),
    )
    assert updated.json() == {
        "status": "accepted",
        "response_id": "delighted:8736452",
        "revision": 2,
        "account_id": "acme",
        "mapped": True,
    }
    # A replay of the .created delivery (same signature, no timestamp to expire) changes nothing.
    replayed = await post_delighted(surveys, delighted_event())
    assert replayed.status_code == 200 and replayed.json()["status"] == "unchanged"
    [row] = await rows(surveys)
    assert (row["revision"], row["comment"]) == (2, "Competitor X does this better")
    events = {e.event_id: e for e in await published(surveys)}
    assert set(events) == {"survey-response:delighted:8736452:1", "survey-response:delighted:8736452:2"}
    assert events["survey-response:delighted:8736452:2"].payload["comment"] == "Competitor X does this better"
    nps = (await surveys.client.get("/v1/accounts/acme/nps", headers=API_AUTH)).json()
    assert (nps["responses"], nps["detractors"], nps["nps"]) == (1, 1, -100.0)  # counted once

    unsubscribed = await post_delighted(
        surveys,
        {
            "event_type": "survey_response.unsubscribed",
            "event_data": {"person": {"email": "jane@acme.example"}},
        },
    )
    assert unsubscribed.json() == {"status": "unsubscribed"}


async def test_typeform_hidden_fields_map_explicitly(surveys: Surveys) -> None:
    body = form_response(
        [nps_answer(10), comment_answer("Love the exports")],
        hidden={"account_id": "globex", "user_id": "u-7"},
    )
    answer = await post_typeform(surveys, body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["mapped"] is True and answer.json()["account_id"] == "globex"
    [event] = await published(surveys)
    assert (event.account_id, event.user_id, event.payload["score"], event.payload["comment"]) == (
        "globex",
        "u-7",
        10,
        "Love the exports",
    )
    again = await post_typeform(surveys, body)  # Typeform redelivers until it sees a 2xx
    assert again.json()["status"] == "unchanged"
    assert len(await rows(surveys)) == 1

    ignored = await post_typeform(surveys, form_response([comment_answer("just text")]))
    assert ignored.status_code == 200 and ignored.json()["status"] == "ignored"
    assert len(await rows(surveys)) == 1


@pytest.mark.parametrize("vendor", ["delighted", "typeform"])
async def test_bad_signatures_are_refused_and_nothing_is_kept(surveys: Surveys, vendor: str) -> None:
    body = delighted_event() if vendor == "delighted" else form_response([nps_answer(3)])
    post = post_delighted if vendor == "delighted" else post_typeform
    wrong = await post(surveys, body, "not-the-secret")
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_signature"
    raw = orjson.dumps(body)
    header = "X-Delighted-Webhook-Signature" if vendor == "delighted" else "Typeform-Signature"
    signature = (
        delighted_signature(DELIGHTED_KEY, raw)
        if vendor == "delighted"
        else typeform_signature(TYPEFORM_SECRET, raw)
    )
    tampered = await surveys.client.post(
        f"/v1/webhooks/{vendor}",
        content=raw.replace(b"3", b"9", 1),
        headers={header: signature, "Content-Type": "application/json"},
    )
    assert tampered.status_code == 401
    missing = await surveys.client.post(f"/v1/webhooks/{vendor}", content=raw)
    assert (missing.status_code, missing.json()["code"]) == (401, "missing_signature")
    assert header in missing.json()["message"]
    assert await rows(surveys) == []
    assert await published(surveys) == []


async def test_unsigned_and_unreadable_deliveries(surveys: Surveys) -> None:
    raw = (
        b'{"event_type": "survey_response.created", "event_data": {"id": "1", "score": 12, "created_at": 1}}'
    )
    signed = {
        "X-Delighted-Webhook-Signature": delighted_signature(DELIGHTED_KEY, raw),
        "Content-Type": "application/json",
    }
    answer = await surveys.client.post("/v1/webhooks/delighted", content=raw, headers=signed)
    assert answer.status_code == 400
    assert answer.json()["errors"] == [
        {"field": "event_data.score", "message": "nps scores are integers from 0 to 10, got 12"}
    ]
    assert await rows(surveys) == []


async def test_webhooks_are_off_without_their_secret(settings: Settings) -> None:
    async with serving(create_app(settings)) as client:
        for vendor, variable in (
            ("delighted", "CHURNWATCH_DELIGHTED_WEBHOOK_SECRET"),
            ("typeform", "CHURNWATCH_TYPEFORM_WEBHOOK_SECRET"),
        ):
            answer = await client.post(f"/v1/webhooks/{vendor}", content=b"{}")
            assert answer.status_code == 404
            assert answer.json()["code"] == "webhook_not_configured"
            assert variable in answer.json()["message"]
        # Without a link secret there are no response pages either.
        assert (await client.get("/s/inv_abcdefghijkl.1.x")).status_code == 404


async def test_native_response_by_email_is_mapped_by_an_explicit_contact(surveys: Surveys) -> None:
    def native(response_id: str, email: str) -> dict[str, Any]:
        return {
            "response_id": response_id,
            "email": email,
            "survey_type": "ces",
            "score": 6,
            "comment": "Setup was easy",
            "submitted_at": "2026-11-20T10:00:00Z",
        }

    answer = await surveys.client.post(
        "/v1/responses", headers=WRITE_KEY, json=native("crm-77", "Carl@Initech.example")
    )
    assert answer.json() == {
        "response_id": "crm-77",
        "revision": 1,
        "status": "accepted",
        "account_id": None,
        "mapped": False,
    }
    await surveys.client.post(
        "/v1/responses", headers=WRITE_KEY, json=native("crm-78", "ann@initech.example")
    )
    # Ann belongs to two accounts: her answer is not guessed onto either.
    await publish(
        surveys.settings,
        identify("u-ann", email="ann@initech.example"),
        group("u-ann", "initech"),
        group("u-ann", "initrode"),
    )

    async def both_known() -> bool:
        contact = await surveys.get_admin("/v1/admin/contacts/u-ann")
        return contact.status_code == 200 and len(contact.json()["account_ids"]) == 2

    await wait_until(both_known, 20, "Ann's two accounts")
    assert [r["account_id"] for r in await rows(surveys)] == [None, None]

    # An admin maps Carl explicitly: his pending answer is mapped and published at once.
    unauthorised = await surveys.client.put(
        "/v1/admin/contacts/crm:carl", json={"email": "carl@initech.example"}
    )
    assert unauthorised.status_code == 401
    mapped = await surveys.client.put(
        "/v1/admin/contacts/crm:carl",
        headers={"Authorization": "Bearer test-admin-token"},
        json={"email": "carl@initech.example", "name": "Carl", "account_ids": ["initech"]},
    )
    assert mapped.status_code == 200, mapped.text
    assert mapped.json() == {
        "user_id": "crm:carl",
        "email": "carl@initech.example",
        "name": "Carl",
        "role": None,
        "zendesk_user_id": None,
        "account_ids": ["initech"],
        "mapped_responses": ["crm-77"],
        "invited_for_tickets": 0,
    }
    [event] = await published(surveys)
    assert (event.account_id, event.event_id) == ("initech", "survey-response:crm-77:1")
    ces = (await surveys.client.get("/v1/insights/ces", params={"group_by": "account"},
                                    headers=API_AUTH)).json()
    assert ces["unmapped_responses"] == 1
    assert [g["key"] for g in ces["groups"]] == ["initech", None]
    assert ces["groups"][0] == {
        "key": "initech",
        "responses": 1,
        "ces_mean": 6.0,
        "easy_share": 100.0,
        "easy": 1,
        "period": ces["period"],
    }
    bad = await surveys.client.put(
        "/v1/admin/contacts/x",
        headers={"Authorization": "Bearer test-admin-token"},
        json={"email": "nope", "account_ids": [" "]},
    )
    assert {e["field"] for e in bad.json()["errors"]} == {"email", "account_ids"}
