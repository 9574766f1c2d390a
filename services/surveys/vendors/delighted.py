"""Delighted webhooks as survey responses. Pure.

Delighted posts `{event_type, event_id, event_data}`; a response first arrives as
`survey_response.created` (the score) and again as `survey_response.updated` when the
comment (or a changed score) follows. Both carry the same `event_data.id`, so both are the
one response `delighted:<id>`: the update amends it, ordered by `event_data.updated_at`.

Respondent: `event_data.person.email`; an account or user named in the person's properties
(`account_id`, `user_id`, set when the survey was sent) maps the response explicitly.
Delighted's other scales (smileys, thumbs, five_star, pmf, enps) are not NPS/CSAT/CES
customer answers and are acknowledged but ignored. An `...unsubscribed` event records the
person's email as unsubscribed, so Churnwatch's own invitations honour it too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError, field_validator

from services.surveys.responses.attribution import normalize_email
from services.surveys.responses.revisions import Channel, IncomingResponse
from services.surveys.vendors.webhook_results import Ignored, Unsubscribed, WebhookResult
from shared.events import SURVEY_SCORE_RANGES, SurveyType
from shared.http import field_errors, invalid_request, validate_body
from shared.openapi_bodies import schema_of, with_properties

SOURCE = "delighted"
RESPONSE_EVENTS = ("survey_response.created", "survey_response.updated")
SURVEY_TYPES = {"nps": SurveyType.NPS, "csat": SurveyType.CSAT, "ces": SurveyType.CES}


class _Person(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | int | None = None
    email: str | None = None
    name: str | None = None


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | int
    person: _Person | None = None
    survey_type: str | None = None  # absent in classic NPS projects
    score: StrictInt
    comment: str | None = Field(default=None, max_length=5_000)
    created_at: int
    updated_at: int | None = None
    person_properties: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _text_id(cls, value: str | int) -> str | int:
        if str(value).strip() == "":
            raise ValueError("must not be blank")
        return value


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_type: str
    event_id: str | None = None
    event_data: dict[str, Any]


def _when(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


def _property(properties: dict[str, Any], name: str) -> str | None:
    value = properties.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class DelightedWebhook:
    event_type: str
    result: WebhookResult


def body_schema() -> dict[str, Any]:
    """The delivery's JSON schema (for OpenAPI), from the models `parse` validates it with:
    a response event's data, or another event's (an unsubscribe's person)."""
    return with_properties(schema_of(_Event), {"event_data": {"anyOf": [
        schema_of(_Response), {"type": "object"}]}})


def parse(body: Any) -> DelightedWebhook:
    """The delivery as a response, an unsubscribe or an ignored event; a 400 naming bad fields."""
    event = validate_body(_Event, body)
    if event.event_type.endswith(".unsubscribed"):
        person = event.event_data.get("person")
        email = normalize_email(person.get("email") if isinstance(person, dict) else None)
        if email is None:
            return DelightedWebhook(event.event_type, Ignored("unsubscribe without a person email"))
        return DelightedWebhook(event.event_type, Unsubscribed(email))
    if event.event_type not in RESPONSE_EVENTS:
        return DelightedWebhook(event.event_type,
                                Ignored(f"event type {event.event_type!r} is not a survey response"))
    try:
        data = _Response.model_validate(event.event_data)
    except ValidationError as exc:
        raise invalid_request(field_errors(exc, prefix="event_data")) from exc
    survey_type = SURVEY_TYPES.get((data.survey_type or "nps").lower())
    if survey_type is None:
        return DelightedWebhook(event.event_type, Ignored(
            f"Delighted survey type {data.survey_type!r} is not NPS, CSAT or CES"))
    valid = SURVEY_SCORE_RANGES[survey_type]
    if data.score not in valid:
        message = (f"{survey_type.value} scores are integers from {valid.start} to {valid.stop - 1}, "
                   f"got {data.score}")
        raise invalid_request([{"field": "event_data.score", "message": message}])
    submitted_at = _when(data.created_at)
    person = data.person or _Person()
    response = IncomingResponse(
        response_id=f"delighted:{data.id}",
        survey_type=survey_type,
        score=data.score,
        comment=data.comment.strip() if data.comment and data.comment.strip() else None,
        submitted_at=submitted_at,
        updated_at=_when(data.updated_at) if data.updated_at is not None else submitted_at,
        channel=Channel.DELIGHTED,
        source=SOURCE,
        account_id=_property(data.person_properties, "account_id"),
        user_id=_property(data.person_properties, "user_id"),
        respondent_email=normalize_email(person.email),
    )
    return DelightedWebhook(event.event_type, response)
