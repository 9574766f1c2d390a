"""Typeform `form_response` webhooks as survey responses. Pure.

The response id is `typeform:<form_response.token>` (Typeform's id of one submission).
The score is the first numeric answer to an `nps`, `opinion_scale` or `rating` field; the
comment is the first `long_text`/`short_text` answer. Which survey it is, in order: a hidden
field `survey_type` (nps|csat|ces); an `nps` field is NPS; a field `ref` naming nps, csat
or ces (e.g. `csat_score`). A form answered without any of these is acknowledged and
ignored rather than guessed (an opinion scale of 1-5 could be CSAT or CES).

Respondent: hidden fields `account_id`, `user_id` and `email` (Typeform passes them in the
form URL), or an `email` answer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from services.surveys.responses.attribution import normalize_email
from services.surveys.responses.revisions import Channel, IncomingResponse
from services.surveys.vendors.webhook_results import Ignored, WebhookResult
from shared.events import SURVEY_SCORE_RANGES, SurveyType
from shared.http import field_errors, invalid_request, validate_body
from shared.openapi_bodies import schema_of, with_properties

SOURCE = "typeform"
SCALE_FIELDS = ("nps", "opinion_scale", "rating")
TEXT_FIELDS = ("long_text", "short_text")
TYPES_BY_NAME = {t.value: t for t in SurveyType}


class _Field(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str | None = None
    type: str | None = None
    ref: str | None = None


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    field: _Field = Field(default_factory=_Field)
    number: Any = None
    text: str | None = None
    email: str | None = None


class _FormResponse(BaseModel):
    model_config = ConfigDict(extra="ignore")
    form_id: str | None = None
    token: str = Field(min_length=1, max_length=150)
    submitted_at: AwareDatetime
    hidden: dict[str, Any] = Field(default_factory=dict)
    answers: list[_Answer] = Field(default_factory=list)


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_id: str | None = None
    event_type: str
    form_response: dict[str, Any] | None = None


def _hidden(hidden: dict[str, Any], name: str) -> str | None:
    value = hidden.get(name)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _type_named_by(ref: str | None) -> SurveyType | None:
    words = set(re.split(r"[^a-z0-9]+", (ref or "").lower()))
    named = [t for name, t in TYPES_BY_NAME.items() if name in words]
    return named[0] if len(named) == 1 else None


def body_schema() -> dict[str, Any]:
    """The delivery's JSON schema (for OpenAPI), from the models `parse` validates it with."""
    return with_properties(schema_of(_Event), {"form_response": schema_of(_FormResponse)})


def parse(body: Any) -> WebhookResult:
    event = validate_body(_Event, body)
    if event.event_type != "form_response":
        return Ignored(f"event type {event.event_type!r} is not form_response")
    if event.form_response is None:
        raise invalid_request([{"field": "form_response", "message": "Field required"}])
    try:
        form = _FormResponse.model_validate(event.form_response)
    except ValidationError as exc:
        raise invalid_request(field_errors(exc, prefix="form_response")) from exc

    scale = [(i, a) for i, a in enumerate(form.answers) if a.field.type in SCALE_FIELDS]
    if not scale:
        return Ignored("no nps, opinion_scale or rating answer in the form response")
    hinted = _hidden(form.hidden, "survey_type")
    survey_type: SurveyType | None = TYPES_BY_NAME.get(hinted.lower()) if hinted else None
    index, answer = scale[0]
    if survey_type is None:
        by_ref = [(i, a, _type_named_by(a.field.ref)) for i, a in scale]
        named = [(i, a, t) for i, a, t in by_ref if t is not None]
        nps_fields = [(i, a) for i, a in scale if a.field.type == "nps"]
        if nps_fields:
            (index, answer), survey_type = nps_fields[0], SurveyType.NPS
        elif named:
            index, answer, survey_type = named[0]
    if survey_type is None:
        return Ignored("cannot tell NPS, CSAT or CES apart: give the scale field a ref naming "
                       "nps, csat or ces, or add a hidden field survey_type")
    field = f"form_response.answers[{index}].number"
    number = answer.number
    if not isinstance(number, int) or isinstance(number, bool):
        raise invalid_request([{"field": field, "message": "must be an integer"}])
    valid = SURVEY_SCORE_RANGES[survey_type]
    if number not in valid:
        raise invalid_request([{"field": field, "message": (
            f"{survey_type.value} scores are integers from {valid.start} to {valid.stop - 1}, "
            f"got {number}")}])
    comment = next((a.text.strip() for a in form.answers
                    if a.field.type in TEXT_FIELDS and a.text and a.text.strip()), None)
    email = normalize_email(_hidden(form.hidden, "email")) or next(
        (normalize_email(a.email) for a in form.answers if a.type == "email" and a.email), None)
    submitted_at: datetime = form.submitted_at
    return IncomingResponse(
        response_id=f"typeform:{form.token}",
        survey_type=survey_type,
        score=number,
        comment=comment[:5_000] if comment else None,
        submitted_at=submitted_at,
        updated_at=submitted_at,
        channel=Channel.TYPEFORM,
        source=SOURCE,
        account_id=_hidden(form.hidden, "account_id"),
        user_id=_hidden(form.hidden, "user_id"),
        respondent_email=email,
    )
