"""A response id names ONE response; re-submitting it amends it, and each amendment is an event.

The stored row is the truth and its event is derived from it alone, so publishing the same
revision twice yields the same event id (`survey-response:{response_id}:{revision}`), which
downstream consumers deduplicate, while an amendment gets the next revision and a new id.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.surveys.submission import SurveyResponseIn
from shared.events import Envelope, EventType, SurveyResponsePayload, SurveyType


@dataclass(frozen=True)
class StoredResponse:
    response_id: str
    account_id: str
    user_id: str | None
    survey_type: SurveyType
    score: int
    comment: str | None
    submitted_at: datetime
    received_at: datetime
    revision: int


class Outcome(StrEnum):
    NEW = "new"
    AMENDED = "amended"
    UNCHANGED = "unchanged"
    # Submitted before the stored revision (a delayed retry of an older version): event
    # time decides, so it must not overwrite the newer answer.
    STALE = "stale"

    @property
    def changed(self) -> bool:
        return self in (Outcome.NEW, Outcome.AMENDED)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    response: StoredResponse  # what is stored once the transaction commits


class ResponseConflict(ValueError):
    """The submission reuses a response id for another account or survey type."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def first_revision(incoming: SurveyResponseIn, received_at: datetime) -> StoredResponse:
    return StoredResponse(
        response_id=incoming.response_id,
        account_id=incoming.account_id,
        user_id=incoming.user_id,
        survey_type=incoming.survey_type,
        score=incoming.score,
        comment=incoming.comment,
        submitted_at=incoming.submitted_at,
        received_at=received_at,
        revision=1,
    )


def decide(existing: StoredResponse | None, incoming: SurveyResponseIn, received_at: datetime) -> Decision:
    """What a submission does to the stored response with its id (None: there is none yet).

    Score, comment, user and submitted_at may be amended; account and survey type may not.
    Event time orders amendments: one submitted before the stored revision is stale. Tools
    that keep the original submitted_at on an update (Delighted keeps created_at) amend in
    arrival order, which the row lock in the store makes well defined.
    """
    if existing is None:
        return Decision(Outcome.NEW, first_revision(incoming, received_at))
    conflicts = []
    if incoming.account_id != existing.account_id:
        conflicts.append({"field": "account_id", "message": (
            f"response {existing.response_id} belongs to account {existing.account_id}; "
            f"an amendment cannot move it to {incoming.account_id}")})
    if incoming.survey_type != existing.survey_type:
        conflicts.append({"field": "survey_type", "message": (
            f"response {existing.response_id} is a {existing.survey_type.value} response; "
            f"an amendment cannot make it {incoming.survey_type.value}")})
    if conflicts:
        raise ResponseConflict(conflicts)
    content = (incoming.user_id, incoming.score, incoming.comment, incoming.submitted_at)
    if content == (existing.user_id, existing.score, existing.comment, existing.submitted_at):
        return Decision(Outcome.UNCHANGED, existing)
    if incoming.submitted_at < existing.submitted_at:
        return Decision(Outcome.STALE, existing)
    amended = replace(
        existing,
        user_id=incoming.user_id,
        score=incoming.score,
        comment=incoming.comment,
        submitted_at=incoming.submitted_at,
        received_at=received_at,
        revision=existing.revision + 1,
    )
    return Decision(Outcome.AMENDED, amended)


def event_id(response_id: str, revision: int) -> str:
    return f"survey-response:{response_id}:{revision}"


def to_envelope(response: StoredResponse, source: str) -> Envelope:
    payload = SurveyResponsePayload(
        response_id=response.response_id,
        survey_type=response.survey_type,
        score=response.score,
        comment=response.comment,
    )
    return Envelope(
        event_id=event_id(response.response_id, response.revision),
        type=EventType.SURVEY_RESPONSE,
        account_id=response.account_id,
        user_id=response.user_id,
        occurred_at=response.submitted_at,
        received_at=response.received_at,
        source=source,
        payload=payload.model_dump(mode="json"),
    )
