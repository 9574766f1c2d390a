"""Delighted and Typeform deliveries as survey responses (pure translation, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.surveys.responses.revisions import Channel, IncomingResponse
from services.surveys.vendors import delighted, typeform
from services.surveys.vendors.webhook_results import Ignored, Unsubscribed
from shared.events import SurveyType
from shared.http import ApiError


def delighted_event(event_type: str = "survey_response.created", **data: Any) -> dict[str, Any]:
    event_data: dict[str, Any] = {
        "id": "8736452",
        "person": {"id": "1234", "email": "Jane@Acme.example", "name": "Jane"},
        "survey_type": "nps",
        "score": 3,
        "comment": None,
        "permalink": "https://example.invalid/r/1",
        "created_at": 1795425600,
        "updated_at": 1795425600,
        "person_properties": {},
        "notes": [],
        "tags": [],
        "additional_answers": [],
    }
    event_data.update(data)
    return {"event_type": event_type, "event_id": "ev-1", "event_data": event_data}


def test_delighted_created_then_updated_are_one_response() -> None:
    created = delighted.parse(delighted_event()).result
    updated = delighted.parse(
        delighted_event("survey_response.updated", comment="  Too slow  ", updated_at=1795425700)
    ).result
    assert isinstance(created, IncomingResponse) and isinstance(updated, IncomingResponse)
    assert created.response_id == updated.response_id == "delighted:8736452"
    assert (created.survey_type, created.score, created.comment) == (SurveyType.NPS, 3, None)
    assert updated.comment == "Too slow"
    # created_at stays the submission time; updated_at orders the amendments.
    assert created.submitted_at == updated.submitted_at == datetime(2026, 11, 23, 9, 20, tzinfo=UTC)
    assert updated.updated_at > created.updated_at
    assert (created.channel, created.source, created.respondent_email) == (
        Channel.DELIGHTED,
        "delighted",
        "jane@acme.example",
    )
    assert (created.account_id, created.user_id) == (None, None)


def test_delighted_person_properties_name_the_account_and_user() -> None:
    parsed = delighted.parse(delighted_event(person_properties={"account_id": "acme", "user_id": 77}))
    assert isinstance(parsed.result, IncomingResponse)
    assert (parsed.result.account_id, parsed.result.user_id) == ("acme", "77")


@pytest.mark.parametrize(
    ("survey_type", "score", "expected"),
    [(None, 10, SurveyType.NPS), ("csat", 5, SurveyType.CSAT), ("CES", 7, SurveyType.CES)],
)
def test_delighted_survey_types(survey_type: str | None, score: int, expected: SurveyType) -> None:
    result = delighted.parse(delighted_event(survey_type=survey_type, score=score)).result
    assert isinstance(result, IncomingResponse) and result.survey_type is expected


def test_delighted_other_events_and_scales_are_ignored_or_unsubscribe() -> None:
    assert isinstance(delighted.parse(delighted_event(survey_type="smileys", score=4)).result, Ignored)
    assert isinstance(delighted.parse(delighted_event("person.created")).result, Ignored)
    unsubscribed = delighted.parse(
        {
            "event_type": "survey_response.unsubscribed",
            "event_data": {"person": {"email": "JANE@acme.example"}},
        }
    ).result
    assert unsubscribed == Unsubscribed("jane@acme.example")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (delighted_event(score=11), "event_data.score"),
        (delighted_event(score="9"), "event_data.score"),
        (delighted_event(created_at="yesterday"), "event_data.created_at"),
        ({"event_type": "survey_response.created"}, "event_data"),
        (delighted_event(id=" "), "event_data.id"),
    ],
)
def test_delighted_bad_payloads_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as caught:
        delighted.parse(body)
    assert caught.value.status == 400
    assert field in [e["field"] for e in caught.value.errors]


def form_response(answers: list[dict[str, Any]], hidden: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": "01HX",
        "event_type": "form_response",
        "form_response": {
            "form_id": "lT4Z3j",
            "token": "a3a12ec67a1365927098a606107fac15",
            "landed_at": "2026-11-22T07:59:00Z",
            "submitted_at": "2026-11-22T08:00:00Z",
            "hidden": hidden or {},
            "definition": {"id": "lT4Z3j", "title": "How are we doing?", "fields": []},
            "answers": answers,
        },
    }


def nps_answer(number: Any) -> dict[str, Any]:
    return {"type": "number", "number": number, "field": {"id": "f1", "type": "nps", "ref": "recommend"}}


def scale_answer(number: int, ref: str | None) -> dict[str, Any]:
    return {"type": "number", "number": number, "field": {"id": "f2", "type": "opinion_scale", "ref": ref}}


def comment_answer(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text, "field": {"id": "f3", "type": "long_text", "ref": "why"}}


def test_typeform_nps_with_hidden_fields() -> None:
    result = typeform.parse(
        form_response(
            [nps_answer(9), comment_answer("We moved from Competitor X")],
            hidden={"account_id": "acme", "user_id": "u-1", "email": "Bob@Acme.example"},
        )
    )
    assert isinstance(result, IncomingResponse)
    assert result == IncomingResponse(
        response_id="typeform:a3a12ec67a1365927098a606107fac15",
        survey_type=SurveyType.NPS,
        score=9,
        comment="We moved from Competitor X",
        submitted_at=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
        updated_at=datetime(2026, 11, 22, 8, 0, tzinfo=UTC),
        channel=Channel.TYPEFORM,
        source="typeform",
        account_id="acme",
        user_id="u-1",
        respondent_email="bob@acme.example",
    )


def test_typeform_opinion_scale_needs_a_named_type() -> None:
    csat = typeform.parse(form_response([scale_answer(4, "csat_score")]))
    assert isinstance(csat, IncomingResponse) and (csat.survey_type, csat.score) == (SurveyType.CSAT, 4)
    hinted = typeform.parse(form_response([scale_answer(6, "effort")], hidden={"survey_type": "ces"}))
    assert isinstance(hinted, IncomingResponse) and hinted.survey_type is SurveyType.CES
    unnamed = typeform.parse(form_response([scale_answer(4, "q1")]))
    assert isinstance(unnamed, Ignored) and "csat" in unnamed.reason
    email_answer = {"type": "email", "email": "Ann@Globex.example", "field": {"type": "email"}}
    with_email = typeform.parse(form_response([nps_answer(0), email_answer]))
    assert isinstance(with_email, IncomingResponse) and with_email.respondent_email == "ann@globex.example"


def test_typeform_without_a_score_or_of_another_kind_is_ignored() -> None:
    assert isinstance(typeform.parse(form_response([comment_answer("hi")])), Ignored)
    assert isinstance(typeform.parse({"event_type": "form_partial", "event_id": "x"}), Ignored)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (form_response([nps_answer(11)]), "form_response.answers[0].number"),
        (form_response([nps_answer(8.5)]), "form_response.answers[0].number"),
        (form_response([scale_answer(6, "csat")]), "form_response.answers[0].number"),
        ({"event_type": "form_response"}, "form_response"),
        ({"event_type": "form_response", "form_response": {"token": "t"}}, "form_response.submitted_at"),
    ],
)
def test_typeform_bad_payloads_name_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(ApiError) as caught:
        typeform.parse(body)
    assert field in [e["field"] for e in caught.value.errors]
