"""Survey definitions: what to ask, whom, and how often. Validation is pure and names fields.

A definition is either
- `relationship`: sent by the scheduler to every contact in its audience, again every
  `cadence_days` (omitted: once per contact, ever); or
- `ticket_solved`: a transactional CSAT or CES sent once per ticket when it is solved.
Either way the quiet period (CHURNWATCH_SURVEY_QUIET_PERIOD_DAYS) applies across all surveys.

Audience: every list given narrows it (dimensions are ANDed, values within one ORed);
an empty or absent list does not narrow. Roles match the contact's `role` or `title`
trait case-insensitively.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from services.surveys.segments import Segment
from shared.account_facts import LifecycleStage
from shared.events import SurveyType
from shared.http import field_errors, invalid_request

MAX_TEXT = 500
MAX_LIST = 1_000


class Trigger(StrEnum):
    RELATIONSHIP = "relationship"
    TICKET_SOLVED = "ticket_solved"


class Status(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ARCHIVED = "archived"


def _clean_list(values: list[str]) -> list[str]:
    cleaned = []
    for value in values:
        text = value.strip()
        if not text:
            raise PydanticCustomError("blank", "entries must not be blank")
        if text not in cleaned:
            cleaned.append(text)
    return cleaned


class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    account_ids: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    plans: list[str] = Field(default_factory=list, max_length=MAX_LIST)
    lifecycle_stages: list[LifecycleStage] = Field(default_factory=list)
    arr_tiers: list[str] = Field(default_factory=list, max_length=50)
    roles: list[str] = Field(default_factory=list, max_length=MAX_LIST)

    @field_validator("account_ids", "plans", "roles")
    @classmethod
    def _no_blanks(cls, values: list[str]) -> list[str]:
        return _clean_list(values)

    @field_validator("arr_tiers")
    @classmethod
    def _known_tiers(cls, values: list[str], info: ValidationInfo) -> list[str]:
        values = _clean_list(values)
        known = (info.context or {}).get("arr_tiers")
        if known is not None:
            unknown = [v for v in values if v not in known]
            if unknown:
                raise PydanticCustomError(
                    "unknown_tier", "unknown ARR tier {unknown}; configured tiers: {known}",
                    {"unknown": ", ".join(unknown), "known": ", ".join(known)})
        return values

    @property
    def restricts_accounts(self) -> bool:
        return bool(self.account_ids or self.plans or self.lifecycle_stages or self.arr_tiers)

    def includes_account(self, account_id: str, segment: Segment) -> bool:
        if self.account_ids and account_id not in self.account_ids:
            return False
        if self.plans and (segment.plan is None or segment.plan.lower() not in
                           {p.lower() for p in self.plans}):
            return False
        if self.lifecycle_stages and segment.lifecycle_stage not in {s.value for s in self.lifecycle_stages}:
            return False
        return not (self.arr_tiers and segment.arr_tier not in self.arr_tiers)

    def includes_role(self, role: str | None) -> bool:
        if not self.roles:
            return True
        return role is not None and role.strip().lower() in {r.lower() for r in self.roles}


class DefinitionIn(BaseModel):
    """The body of POST /v1/admin/surveys and PUT /v1/admin/surveys/{id}."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    survey_type: SurveyType
    trigger: Trigger = Trigger.RELATIONSHIP
    question: str = Field(min_length=1, max_length=MAX_TEXT)
    comment_question: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT)
    audience: Audience = Field(default_factory=Audience)
    cadence_days: int | None = Field(default=None, ge=1, le=3650)
    status: Status = Status.ACTIVE

    @field_validator("name", "question", "comment_question")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise PydanticCustomError("blank", "must not be blank")
        return value.strip() if value is not None else None

    @model_validator(mode="after")
    def _trigger_rules(self) -> Self:
        if self.trigger is Trigger.TICKET_SOLVED:
            if self.survey_type is SurveyType.NPS:
                raise PydanticCustomError(
                    "ticket_nps", "survey_type: a ticket_solved survey asks CSAT or CES about the "
                    "ticket; NPS measures the relationship (use trigger relationship)")
            if self.cadence_days is not None:
                raise PydanticCustomError(
                    "ticket_cadence", "cadence_days: a ticket_solved survey is sent once per "
                    "solved ticket; leave cadence_days out")
        return self


def validate_definition(body: Any, arr_tiers: Sequence[str]) -> DefinitionIn:
    """The JSON body as a definition, or a 400 naming each invalid field."""
    if not isinstance(body, dict):
        raise invalid_request([{"field": "body", "message": "must be a JSON object"}])
    try:
        return DefinitionIn.model_validate(body, context={"arr_tiers": list(arr_tiers)})
    except ValidationError as exc:
        errors = []
        for error in field_errors(exc):
            if error["field"] == "body" and ": " in error["message"]:
                # Cross-field rules name their field at the start of the message.
                field, _, message = error["message"].partition(": ")
                error = {"field": field, "message": message}
            errors.append(error)
        raise invalid_request(errors) from exc


@dataclass(frozen=True)
class Definition:
    id: str
    name: str
    survey_type: SurveyType
    trigger: Trigger
    question: str
    comment_question: str | None
    audience: Audience
    cadence_days: int | None
    status: Status
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "survey_type": self.survey_type.value,
            "trigger": self.trigger.value, "question": self.question,
            "comment_question": self.comment_question,
            "audience": self.audience.model_dump(mode="json"),
            "cadence_days": self.cadence_days, "status": self.status.value,
            "created_at": self.created_at.isoformat(), "updated_at": self.updated_at.isoformat(),
        }


def new_definition_id() -> str:
    return "sv_" + secrets.token_hex(8)
