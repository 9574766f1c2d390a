"""What a valid survey response is, and the 400 that names every field that is not.

Scores are integers in the range of their survey type; a float, a numeric string or a
boolean is refused rather than coerced, because a survey tool sending 8.5 or "9" has a bug
the CS team should hear about, not a silently rounded answer.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.surveys.responses.attribution import normalize_email
from services.surveys.responses.revisions import Channel, IncomingResponse
from shared.events import SURVEY_SCORE_RANGES, SurveyType
from shared.http import ApiError, invalid_request, validate_body

MAX_ID_CHARS = 200
MAX_COMMENT_CHARS = 5_000
# The event id is "survey-response:{response_id}:{revision}" and an envelope's event_id holds
# at most 200 characters: 16 for the prefix, 1 for the colon, up to 10 for the revision.
MAX_RESPONSE_ID_CHARS = 170


class SurveyResponseIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    response_id: str = Field(min_length=1, max_length=MAX_RESPONSE_ID_CHARS)
    # Without an account, the respondent's user id or email maps the response via contacts.
    account_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    user_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    email: str | None = Field(default=None, max_length=320)
    survey_type: SurveyType
    score: StrictInt
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    submitted_at: AwareDatetime
    # When this version was made (defaults to submitted_at): an older version never wins.
    updated_at: AwareDatetime | None = None

    @field_validator("email")
    @classmethod
    def _an_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        email = normalize_email(value)
        if email is None:
            raise PydanticCustomError("email", "must be an email address")
        return email

    @model_validator(mode="after")
    def _someone_answered(self) -> Self:
        if self.account_id is None and self.user_id is None and self.email is None:
            raise PydanticCustomError(
                "respondent", "required unless user_id or email identifies the respondent")
        return self

    @field_validator("response_id", "account_id", "user_id")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise PydanticCustomError("blank", "must not be blank")
        return value

    @field_validator("score")
    @classmethod
    def _in_range_for_type(cls, score: int, info: ValidationInfo) -> int:
        survey_type = info.data.get("survey_type")
        if survey_type is None:  # survey_type itself is invalid and reported on its own
            return score
        valid = SURVEY_SCORE_RANGES[survey_type]
        if score not in valid:
            raise PydanticCustomError(
                "score_out_of_range",
                "{survey_type} scores are integers from {low} to {high}, got {score}",
                {"survey_type": survey_type.value, "low": valid.start, "high": valid.stop - 1,
                 "score": score},
            )
        return score


def validate_response(body: Any) -> SurveyResponseIn:
    """The parsed JSON body as a response, or a 400 naming each invalid field."""
    try:
        return validate_body(SurveyResponseIn, body)
    except ApiError as exc:
        # A model-level error has no field of its own; it is about who answered.
        errors = [{**e, "field": "account_id"}
                  if e["field"] == "body" and "identifies the respondent" in e["message"] else e
                  for e in exc.errors]
        raise invalid_request(errors) from exc


def to_incoming(body: SurveyResponseIn, source: str) -> IncomingResponse:
    return IncomingResponse(
        response_id=body.response_id,
        survey_type=body.survey_type,
        score=body.score,
        comment=body.comment,
        submitted_at=body.submitted_at,
        updated_at=body.updated_at or body.submitted_at,
        channel=Channel.API,
        source=source,
        account_id=body.account_id,
        user_id=body.user_id,
        respondent_email=body.email,
    )
