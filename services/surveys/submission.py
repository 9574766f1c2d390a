"""What a valid survey response is, and the 400 that names every field that is not.

Scores are integers in the range of their survey type; a float, a numeric string or a
boolean is refused rather than coerced, because a survey tool sending 8.5 or "9" has a bug
the CS team should hear about, not a silently rounded answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from shared.events import SURVEY_SCORE_RANGES, SurveyType
from shared.http import validate_body

MAX_ID_CHARS = 200
MAX_COMMENT_CHARS = 5_000
# The event id is "survey-response:{response_id}:{revision}" and an envelope's event_id holds
# at most 200 characters: 16 for the prefix, 1 for the colon, up to 10 for the revision.
MAX_RESPONSE_ID_CHARS = 170


class SurveyResponseIn(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    response_id: str = Field(min_length=1, max_length=MAX_RESPONSE_ID_CHARS)
    account_id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    user_id: str | None = Field(default=None, min_length=1, max_length=MAX_ID_CHARS)
    survey_type: SurveyType
    score: StrictInt
    comment: str | None = Field(default=None, max_length=MAX_COMMENT_CHARS)
    submitted_at: AwareDatetime

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
    return validate_body(SurveyResponseIn, body)
