"""A response id names ONE response; re-submitting it amends it, and each amendment is an event.

Every way a response arrives (the native API, an invitation's page, Delighted, Typeform)
becomes an `IncomingResponse`; `decide` says what it does to the stored row. The stored row
is the truth and its event is derived from it alone, so publishing the same revision twice
yields the same event id (`survey-response:{response_id}:{revision}`), which downstream
consumers deduplicate, while an amendment gets the next revision and a new id.

A response whose respondent cannot be mapped to an account is stored without one and not
published (scoring keys everything by account); once a contact makes the mapping possible,
the current revision is published as it stands (outcome `mapped`, same revision).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from services.surveys.responses.attribution import Attribution, MappedBy
from shared.events import Envelope, EventType, SurveyResponsePayload, SurveyType


class Channel(StrEnum):
    """How a response reached Churnwatch (a metric label and a payload field: keep it small)."""

    API = "api"
    EMAIL_INVITATION = "email_invitation"
    DELIGHTED = "delighted"
    TYPEFORM = "typeform"


@dataclass(frozen=True)
class IncomingResponse:
    response_id: str
    survey_type: SurveyType
    score: int
    comment: str | None
    submitted_at: datetime
    # The source's version clock: an amendment older than the stored one is stale.
    updated_at: datetime
    channel: Channel
    source: str  # the envelope's source: a write key's source, "delighted", "typeform", "surveys"
    account_id: str | None = None  # named explicitly by the sender (body, hidden field, invitation)
    user_id: str | None = None
    respondent_email: str | None = None
    campaign_id: str | None = None
    invitation_id: str | None = None
    ticket_id: str | None = None


@dataclass(frozen=True)
class StoredResponse:
    response_id: str
    account_id: str | None  # None: kept, counted, not yet published
    user_id: str | None
    survey_type: SurveyType
    score: int
    comment: str | None
    submitted_at: datetime
    received_at: datetime
    revision: int
    updated_at: datetime | None = None  # None = submitted_at
    source: str = "api"
    channel: Channel = Channel.API
    respondent_email: str | None = None
    mapped_by: MappedBy | None = None
    campaign_id: str | None = None
    invitation_id: str | None = None
    ticket_id: str | None = None

    @property
    def version_at(self) -> datetime:
        return self.updated_at or self.submitted_at

    @property
    def publishable(self) -> bool:
        return self.account_id is not None


class Outcome(StrEnum):
    NEW = "new"
    AMENDED = "amended"
    MAPPED = "mapped"  # same content, now attributed to an account: published for the first time
    UNCHANGED = "unchanged"
    # Older than the stored revision (a delayed retry of an older version): event time
    # decides, so it must not overwrite the newer answer.
    STALE = "stale"

    @property
    def changed(self) -> bool:
        return self in (Outcome.NEW, Outcome.AMENDED, Outcome.MAPPED)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    response: StoredResponse  # what is stored once the transaction commits


class ResponseConflict(ValueError):
    """The submission reuses a response id for another account or survey type."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def first_revision(incoming: IncomingResponse, attribution: Attribution,
                   received_at: datetime) -> StoredResponse:
    return StoredResponse(
        response_id=incoming.response_id,
        account_id=attribution.account_id,
        user_id=incoming.user_id,
        survey_type=incoming.survey_type,
        score=incoming.score,
        comment=incoming.comment,
        submitted_at=incoming.submitted_at,
        received_at=received_at,
        revision=1,
        updated_at=incoming.updated_at,
        source=incoming.source,
        channel=incoming.channel,
        respondent_email=incoming.respondent_email,
        mapped_by=attribution.mapped_by,
        campaign_id=incoming.campaign_id,
        invitation_id=incoming.invitation_id,
        ticket_id=incoming.ticket_id,
    )


def _content(r: IncomingResponse | StoredResponse) -> tuple[object, ...]:
    updated = r.updated_at if isinstance(r, IncomingResponse) else r.version_at
    return (r.user_id, r.score, r.comment, r.submitted_at, updated, r.respondent_email)


def decide(existing: StoredResponse | None, incoming: IncomingResponse, attribution: Attribution,
           received_at: datetime) -> Decision:
    """What a submission does to the stored response with its id (None: there is none yet).

    Score, comment, user, email and times may be amended; survey type may not. The account
    is set once: an unmapped response takes the first account it can be mapped to; after
    that, an explicit account naming another one is a conflict, and a mapping through
    contacts (which may have changed since) never moves it. Amendments are ordered by the
    source's version time (`updated_at`); equal times amend in arrival order, which the row
    lock in the store makes well defined.
    """
    if existing is None:
        return Decision(Outcome.NEW, first_revision(incoming, attribution, received_at))
    conflicts = []
    explicit = attribution.mapped_by in (MappedBy.EXPLICIT, MappedBy.INVITATION)
    if (existing.account_id is not None and explicit
            and attribution.account_id != existing.account_id):
        conflicts.append({"field": "account_id", "message": (
            f"response {existing.response_id} belongs to account {existing.account_id}; "
            f"an amendment cannot move it to {attribution.account_id}")})
    if incoming.survey_type != existing.survey_type:
        conflicts.append({"field": "survey_type", "message": (
            f"response {existing.response_id} is a {existing.survey_type.value} response; "
            f"an amendment cannot make it {incoming.survey_type.value}")})
    if conflicts:
        raise ResponseConflict(conflicts)

    newly_mapped = existing.account_id is None and attribution.account_id is not None
    account_id = attribution.account_id if newly_mapped else existing.account_id
    mapped_by = attribution.mapped_by if newly_mapped else existing.mapped_by
    if _content(incoming) == _content(existing) or incoming.updated_at < existing.version_at:
        if newly_mapped:
            return Decision(Outcome.MAPPED, replace(existing, account_id=account_id,
                                                    mapped_by=mapped_by))
        same = _content(incoming) == _content(existing)
        return Decision(Outcome.UNCHANGED if same else Outcome.STALE, existing)
    amended = replace(
        existing,
        user_id=incoming.user_id,
        score=incoming.score,
        comment=incoming.comment,
        submitted_at=incoming.submitted_at,
        updated_at=incoming.updated_at,
        respondent_email=incoming.respondent_email or existing.respondent_email,
        received_at=received_at,
        source=incoming.source,
        revision=existing.revision + 1,
        account_id=account_id,
        mapped_by=mapped_by,
    )
    return Decision(Outcome.AMENDED, amended)


def map_to(existing: StoredResponse, attribution: Attribution) -> Decision:
    """An unmapped response whose respondent became known: the same revision, now attributed."""
    if existing.account_id is not None or attribution.account_id is None:
        return Decision(Outcome.UNCHANGED, existing)
    return Decision(Outcome.MAPPED, replace(existing, account_id=attribution.account_id,
                                            mapped_by=attribution.mapped_by))


def event_id(response_id: str, revision: int) -> str:
    return f"survey-response:{response_id}:{revision}"


def to_envelope(response: StoredResponse) -> Envelope:
    if response.account_id is None:
        raise ValueError(f"response {response.response_id} is not mapped to an account")
    payload = SurveyResponsePayload(
        response_id=response.response_id,
        survey_type=response.survey_type,
        score=response.score,
        comment=response.comment,
        revision=response.revision,
        channel=response.channel.value,
        campaign_id=response.campaign_id,
        ticket_id=response.ticket_id,
    )
    return Envelope(
        event_id=event_id(response.response_id, response.revision),
        type=EventType.SURVEY_RESPONSE,
        account_id=response.account_id,
        user_id=response.user_id,
        occurred_at=response.submitted_at,
        received_at=response.received_at,
        source=response.source,
        payload=payload.model_dump(mode="json"),
    )
