"""What a valid response is, and what re-submitting a response id does to it (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.surveys.responses.attribution import Attribution, MappedBy
from services.surveys.responses.revisions import (
    Channel,
    IncomingResponse,
    Outcome,
    ResponseConflict,
    StoredResponse,
    decide,
    event_id,
    first_revision,
    map_to,
    to_envelope,
)
from services.surveys.responses.submission import SurveyResponseIn, to_incoming, validate_response
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
        ({"account_id": ..., "user_id": ...}, "account_id",
         "required unless user_id or email identifies the respondent"),
        ({"email": "not-an-address"}, "email", "must be an email address"),
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


ACME = Attribution("acme", MappedBy.EXPLICIT)


def incoming(**changes: Any) -> IncomingResponse:
    return to_incoming(SurveyResponseIn.model_validate(body(**changes)), "bootstrap")


def stored(**changes: Any) -> StoredResponse:
    return first_revision(incoming(**changes), ACME, RECEIVED)


def test_a_response_without_account_names_its_respondent() -> None:
    by_email = validate_response(body(account_id=..., user_id=..., email=" Jane@Example.COM "))
    assert (by_email.account_id, by_email.email) == (None, "jane@example.com")
    assert validate_response(body(account_id=...)).user_id == "u1"


def test_a_new_response_is_revision_one() -> None:
    decision = decide(None, incoming(), ACME, RECEIVED)
    assert decision.outcome is Outcome.NEW
    assert decision.response.revision == 1
    assert decision.response.received_at == RECEIVED
    assert (decision.response.account_id, decision.response.mapped_by) == ("acme", MappedBy.EXPLICIT)


def test_identical_resubmission_changes_nothing() -> None:
    existing = stored()
    later = RECEIVED + timedelta(hours=1)
    same_instant = incoming(submitted_at="2026-11-20T09:00:00Z")
    decision = decide(existing, same_instant, ACME, later)
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
    decision = decide(existing, incoming(**changes), ACME, later)
    assert decision.outcome is Outcome.AMENDED
    assert decision.response.revision == 2
    assert decision.response.received_at == later
    assert decision.response.response_id == existing.response_id


def test_an_older_version_arriving_late_does_not_overwrite_a_newer_one() -> None:
    newer = stored(submitted_at="2026-11-21T10:00:00Z", score=3)
    delayed_retry = incoming(submitted_at="2026-11-20T10:00:00Z", score=9)
    decision = decide(newer, delayed_retry, ACME, RECEIVED)
    assert decision.outcome is Outcome.STALE
    assert decision.response == newer


def test_the_version_clock_is_updated_at_when_the_source_keeps_submitted_at() -> None:
    # Delighted: created_at stays, updated_at moves when the comment arrives.
    first = stored(comment=..., updated_at="2026-11-20T10:00:00+01:00")
    with_comment = incoming(comment="Slow exports", updated_at="2026-11-20T10:05:00+01:00")
    amended = decide(first, with_comment, ACME, RECEIVED).response
    assert (amended.revision, amended.comment) == (2, "Slow exports")
    # The .created delivery retried after the .updated one changes nothing.
    late_created = incoming(comment=..., updated_at="2026-11-20T10:00:00+01:00")
    assert decide(amended, late_created, ACME, RECEIVED).outcome is Outcome.STALE


def test_a_response_id_cannot_change_account_or_type() -> None:
    with pytest.raises(ResponseConflict) as caught:
        decide(stored(), incoming(account_id="globex", survey_type="csat", score=5),
               Attribution("globex", MappedBy.EXPLICIT), RECEIVED)
    assert [e["field"] for e in caught.value.errors] == ["account_id", "survey_type"]
    assert "belongs to account acme" in str(caught.value)


def test_an_unmapped_response_is_mapped_once_and_then_keeps_its_account() -> None:
    unmapped = first_revision(incoming(account_id=...), Attribution(None, None, "unknown user"), RECEIVED)
    assert not unmapped.publishable
    with pytest.raises(ValueError, match="not mapped"):
        to_envelope(unmapped)
    # The same content, now attributable: same revision, published for the first time.
    mapped = decide(unmapped, incoming(account_id=...), Attribution("acme", MappedBy.USER), RECEIVED)
    assert mapped.outcome is Outcome.MAPPED
    assert (mapped.response.revision, mapped.response.account_id) == (1, "acme")
    assert map_to(unmapped, Attribution("acme", MappedBy.EMAIL)).response.mapped_by is MappedBy.EMAIL
    # A contact change later never moves it; only an explicit other account conflicts.
    moved = decide(mapped.response, incoming(account_id=..., score=4), Attribution("globex", MappedBy.USER),
                   RECEIVED)
    assert (moved.outcome, moved.response.account_id, moved.response.revision) == (Outcome.AMENDED, "acme", 2)
    unknown_now = decide(mapped.response, incoming(account_id=...), Attribution(None), RECEIVED)
    assert (unknown_now.outcome, unknown_now.response.account_id) == (Outcome.UNCHANGED, "acme")


def test_the_envelope_is_derived_from_the_stored_revision_alone() -> None:
    response = stored(score=3, comment="Too slow")
    envelope = to_envelope(response)
    assert envelope.event_id == "survey-response:r1:1" == event_id("r1", 1)
    assert envelope.type is EventType.SURVEY_RESPONSE
    assert (envelope.account_id, envelope.user_id, envelope.source) == ("acme", "u1", "bootstrap")
    assert envelope.occurred_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert envelope.received_at == RECEIVED
    assert envelope.payload == {"response_id": "r1", "survey_type": SurveyType.NPS.value,
                                "score": 3, "comment": "Too slow", "revision": 1,
                                "channel": Channel.API.value, "campaign_id": None, "ticket_id": None}
    assert to_envelope(response) == envelope  # a re-publish is the same event
    # The longest id at the highest revision the column holds still fits an envelope's event_id.
    longest = replace(stored(response_id="r" * 170), revision=2**31 - 1)
    assert len(to_envelope(longest).event_id) <= 200
