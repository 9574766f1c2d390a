"""What a valid response is, and what re-submitting a response id does to it (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.surveys.revisions import (
    Outcome,
    ResponseConflict,
    StoredResponse,
    decide,
    event_id,
    first_revision,
    to_envelope,
)
from services.surveys.submission import SurveyResponseIn, validate_response
from shared.events import EventType, SurveyType
from shared.http import ApiError

SUBMITTED = "2026-11-20T10:00:00+01:00"
RECEIVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"response_id": "r1", "account_id": "acme", "user_id": "u1",
                            "survey_type": "nps", "score": 9, "comment": "Great",
                            "submitted_at": SUBMITTED}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def refusal(raw: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        validate_response(raw)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_request"
    return caught.value


@pytest.mark.parametrize(
    ("survey_type", "low", "high"), [("nps", 0, 10), ("csat", 1, 5), ("ces", 1, 7)]
)
def test_each_type_accepts_exactly_its_range(survey_type: str, low: int, high: int) -> None:
    for score in range(low, high + 1):
        assert validate_response(body(survey_type=survey_type, score=score)).score == score
    for score in (low - 1, high + 1):
        error = refusal(body(survey_type=survey_type, score=score))
        assert error.errors == [{"field": "score", "message":
                                 f"{survey_type} scores are integers from {low} to {high}, got {score}"}]


@pytest.mark.parametrize("score", [8.0, 8.5, "8", True, None])
def test_score_must_be_a_json_integer(score: Any) -> None:
    error = refusal(body(score=score))
    assert [e["field"] for e in error.errors] == ["score"]
    assert "valid integer" in error.message


@pytest.mark.parametrize(
    ("changes", "field", "names"),
    [
        ({"response_id": ...}, "response_id", "Field required"),
        ({"account_id": ...}, "account_id", "Field required"),
        ({"score": ...}, "score", "Field required"),
        ({"submitted_at": ...}, "submitted_at", "Field required"),
        ({"survey_type": "abc"}, "survey_type", "'nps', 'csat' or 'ces'"),
        ({"submitted_at": "2026-11-20T10:00:00"}, "submitted_at", "timezone"),
        ({"submitted_at": "yesterday"}, "submitted_at", "datetime"),
        ({"response_id": "x" * 171}, "response_id", "at most 170 characters"),
        ({"account_id": "x" * 201}, "account_id", "at most 200 characters"),
        ({"user_id": "x" * 201}, "user_id", "at most 200 characters"),
        ({"account_id": "   "}, "account_id", "must not be blank"),
        ({"comment": "x" * 5_001}, "comment", "at most 5000 characters"),
    ],
)
def test_invalid_fields_are_named(changes: dict[str, Any], field: str, names: str) -> None:
    error = refusal(body(**changes))
    assert [e["field"] for e in error.errors] == [field]
    assert names in error.errors[0]["message"]
    assert error.message.startswith(f"{field}: ")


def test_every_problem_is_reported_at_once() -> None:
    error = refusal(body(response_id=..., survey_type="csat", score=0, comment=7))
    assert {e["field"] for e in error.errors} == {"response_id", "score", "comment"}


def test_body_must_be_an_object() -> None:
    assert refusal([body()]).errors == [{"field": "body", "message": "must be a JSON object"}]


def test_optional_fields_and_limits_at_their_edge() -> None:
    minimal = validate_response(body(user_id=..., comment=..., response_id="r" * 170,
                                     account_id="a" * 200, survey_type="ces", score=7))
    assert (minimal.user_id, minimal.comment) == (None, None)
    assert validate_response(body(comment="x" * 5_000)).comment == "x" * 5_000
    # Unknown fields (a survey tool's extras) are ignored, not refused.
    assert validate_response(body(channel="email")).score == 9


def stored(**changes: Any) -> StoredResponse:
    return first_revision(SurveyResponseIn.model_validate(body(**changes)), RECEIVED)


def test_a_new_response_is_revision_one() -> None:
    decision = decide(None, validate_response(body()), RECEIVED)
    assert decision.outcome is Outcome.NEW
    assert decision.response.revision == 1
    assert decision.response.received_at == RECEIVED


def test_identical_resubmission_changes_nothing() -> None:
    existing = stored()
    later = RECEIVED + timedelta(hours=1)
    same_instant = validate_response(body(submitted_at="2026-11-20T09:00:00Z"))
    decision = decide(existing, same_instant, later)
    assert decision.outcome is Outcome.UNCHANGED
    assert decision.response == existing


@pytest.mark.parametrize(
    "changes",
    [{"score": 3}, {"comment": "Actually slow"}, {"comment": ...}, {"user_id": "u2"},
     {"submitted_at": "2026-11-21T10:00:00Z"}],
)
def test_a_changed_resubmission_is_the_next_revision(changes: dict[str, Any]) -> None:
    existing = stored()
    later = RECEIVED + timedelta(hours=1)
    decision = decide(existing, validate_response(body(**changes)), later)
    assert decision.outcome is Outcome.AMENDED
    assert decision.response.revision == 2
    assert decision.response.received_at == later
    assert decision.response.response_id == existing.response_id


def test_an_older_version_arriving_late_does_not_overwrite_a_newer_one() -> None:
    newer = stored(submitted_at="2026-11-21T10:00:00Z", score=3)
    delayed_retry = validate_response(body(submitted_at="2026-11-20T10:00:00Z", score=9))
    decision = decide(newer, delayed_retry, RECEIVED)
    assert decision.outcome is Outcome.STALE
    assert decision.response == newer


def test_a_response_id_cannot_change_account_or_type() -> None:
    with pytest.raises(ResponseConflict) as caught:
        decide(stored(), validate_response(body(account_id="globex", survey_type="csat", score=5)),
               RECEIVED)
    assert [e["field"] for e in caught.value.errors] == ["account_id", "survey_type"]
    assert "belongs to account acme" in str(caught.value)


def test_the_envelope_is_derived_from_the_stored_revision_alone() -> None:
    response = stored(score=3, comment="Too slow")
    envelope = to_envelope(response, source="delighted")
    assert envelope.event_id == "survey-response:r1:1" == event_id("r1", 1)
    assert envelope.type is EventType.SURVEY_RESPONSE
    assert (envelope.account_id, envelope.user_id, envelope.source) == ("acme", "u1", "delighted")
    assert envelope.occurred_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert envelope.received_at == RECEIVED
    assert envelope.payload == {"response_id": "r1", "survey_type": SurveyType.NPS.value,
                                "score": 3, "comment": "Too slow"}
    assert to_envelope(response, source="delighted") == envelope  # a re-publish is the same event
    # The longest id at the highest revision the column holds still fits an envelope's event_id.
    longest = replace(stored(response_id="r" * 170), revision=2**31 - 1)
    assert len(to_envelope(longest, source="s").event_id) <= 200
