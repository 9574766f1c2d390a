"""The event contract: one versioned envelope for every message on Kafka.

Pydantic models here are the single source of truth for what travels between services.
Every payload type has its own model; `Envelope.payload` holds it as plain JSON so a
consumer that does not know a newer payload field still decodes the envelope.
"""

from __future__ import annotations

import builtins
import re
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, Literal, TypeVar

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.door import EventTimeWindow, may_hold_nul, nul_errors
from shared.settings import event_time_window, get_settings

SCHEMA_VERSION: Literal[1] = 1

PayloadT = TypeVar("PayloadT", bound=BaseModel)


class EventType(StrEnum):
    TRACK = "track"
    PAGE = "page"
    SCREEN = "screen"
    IDENTIFY = "identify"
    GROUP = "group"
    TICKET = "ticket"
    SURVEY_RESPONSE = "survey_response"
    HEALTH_SCORE = "health_score"
    RISK_SIGNAL = "risk_signal"
    HEALTH_OVERRIDE = "health_override"  # a CSM's override, on scoring's own overrides topic


class Band(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    GREEN = "green"


class SurveyType(StrEnum):
    NPS = "nps"
    CSAT = "csat"
    CES = "ces"


# The scale of each survey type: NPS 0-10, CSAT 1-5, CES 1-7 (7 = strongly agree it was easy).
SURVEY_SCORE_RANGES: dict[SurveyType, range] = {
    SurveyType.NPS: range(0, 11),
    SurveyType.CSAT: range(1, 6),
    SurveyType.CES: range(1, 8),
}


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(min_length=1, max_length=200, description="idempotency key")
    type: EventType
    account_id: str | None = Field(default=None, description="partition key; None = unattributed")
    user_id: str | None = None
    occurred_at: AwareDatetime = Field(description="event time, from the client")
    received_at: AwareDatetime
    source: str = Field(min_length=1, max_length=100)
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("occurred_at", "received_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def payload_as(self, model: builtins.type[PayloadT]) -> PayloadT:
        return model.model_validate(self.payload)

    def partition_key(self) -> bytes:
        return partition_key_for(self.account_id, self.user_id, self.event_id)


def partition_key_for(account_id: str | None, user_id: str | None, event_id: str) -> bytes:
    """The Kafka key of an event: its account, so an account's events stay in order."""
    # Unattributed events still need a stable key so one user's events stay in order.
    key = account_id or f"user:{user_id or event_id}"
    return key.encode()


def encode(envelope: Envelope) -> bytes:
    return orjson.dumps(envelope.model_dump(mode="json"))


class InvalidEvent(ValueError):
    """A message on Kafka that is not a valid envelope: it belongs on the dead-letter topic."""


def decode(raw: bytes | None, window: EventTimeWindow | None = None) -> Envelope:
    """The envelope in `raw`, or InvalidEvent; `window`: the configured one when None."""
    if raw is None:
        raise InvalidEvent("empty message")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(str(exc)) from exc
    # The door's rules again, for what reached Kafka some other way: an envelope that a
    # database write would choke on is dead-lettered here instead.
    if may_hold_nul(raw) and (nul := nul_errors(data)):
        raise InvalidEvent(f"{nul[0]['field']}: {nul[0]['message']}")
    envelope = _validated(data)
    problem = (window or _configured_window()).problem(envelope.occurred_at, envelope.received_at)
    if problem is not None:
        raise InvalidEvent(f"occurred_at {envelope.occurred_at.isoformat()}: {problem}")
    return envelope


@lru_cache(maxsize=1)
def _configured_window() -> EventTimeWindow:
    return event_time_window(get_settings())


def _validated(data: Any) -> Envelope:
    # Consumers decode every record: the common well-formed envelope is checked by hand (no
    # model validation per event); anything the quick checks do not vouch for goes through
    # pydantic, so what is accepted and the errors raised are the model's.
    quick = _quick_envelope(data)
    if quick is not None:
        return quick
    try:
        return Envelope.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(str(exc)) from exc


_EVENT_TYPES = {t.value: t for t in EventType}
_ENVELOPE_FIELDS = frozenset(Envelope.model_fields)
# A subset of what pydantic's datetime parsing accepts, read identically by fromisoformat.
_AWARE_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?(Z|[+-]\d\d:\d\d)")


def _aware(value: Any) -> datetime | None:
    if type(value) is not str or _AWARE_ISO.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:
        return None


def _optional_text(value: Any) -> bool:
    return value is None or type(value) is str


def _quick_envelope(data: Any) -> Envelope | None:
    """The envelope the model would validate `data` into, or None when not plainly valid."""
    if type(data) is not dict:
        return None
    version = data.get("schema_version", SCHEMA_VERSION)
    event_id, source = data.get("event_id"), data.get("source")
    kind = data.get("type")
    event_type = _EVENT_TYPES.get(kind) if type(kind) is str else None
    payload = data.get("payload", {})
    account_id, user_id = data.get("account_id"), data.get("user_id")
    if (
        type(version) is not int or version != SCHEMA_VERSION
        or type(event_id) is not str or not 1 <= len(event_id) <= 200
        or type(source) is not str or not 1 <= len(source) <= 100
        or event_type is None
        or type(payload) is not dict
        or not _optional_text(account_id) or not _optional_text(user_id)
    ):
        return None
    occurred_at, received_at = _aware(data.get("occurred_at")), _aware(data.get("received_at"))
    if occurred_at is None or received_at is None:
        return None
    return trusted_envelope(event_id, event_type, account_id, user_id, occurred_at, received_at,
                            source, payload, set(_ENVELOPE_FIELDS.intersection(data)))


def trusted_envelope(
    event_id: str, event_type: EventType, account_id: str | None, user_id: str | None,
    occurred_at: datetime, received_at: datetime, source: str, payload: dict[str, Any],
    fields_set: set[str] | None = None,
) -> Envelope:
    """An envelope from values already valid (UTC datetimes included), without validating them
    again: what `Envelope.model_construct` does, minus its generic per-field work (per event,
    that was a twentieth of a consumer's CPU)."""
    envelope = Envelope.__new__(Envelope)
    object.__setattr__(envelope, "__dict__", {
        "schema_version": SCHEMA_VERSION, "event_id": event_id, "type": event_type,
        "account_id": account_id, "user_id": user_id, "occurred_at": occurred_at,
        "received_at": received_at, "source": source, "payload": payload})
    object.__setattr__(envelope, "__pydantic_fields_set__",
                       set(_ENVELOPE_FIELDS) if fields_set is None else fields_set)
    object.__setattr__(envelope, "__pydantic_extra__", None)
    object.__setattr__(envelope, "__pydantic_private__", None)
    return envelope


# --- payloads -------------------------------------------------------------------------------


class UsagePayload(BaseModel):
    """track / page / screen: something a user did in the product."""

    event: str
    properties: dict[str, Any] = Field(default_factory=dict)
    anonymous_id: str | None = None


class TraitsPayload(BaseModel):
    """identify / group: facts about a user or an account (plan, seats, owner CSM, ...)."""

    traits: dict[str, Any] = Field(default_factory=dict)
    group_id: str | None = None
    anonymous_id: str | None = None


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    HOLD = "hold"
    SOLVED = "solved"
    CLOSED = "closed"

    @property
    def is_open(self) -> bool:
        return self not in (TicketStatus.SOLVED, TicketStatus.CLOSED)


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class TicketPayload(BaseModel):
    ticket_id: str = Field(min_length=1, max_length=200)
    status: TicketStatus
    priority: TicketPriority = TicketPriority.NORMAL
    subject: str | None = Field(default=None, max_length=2_000)
    tags: list[str] = Field(default_factory=list)
    # Help-desk context (webhooks): what attributed the ticket, and its own timeline.
    organization_id: str | None = None
    requester_email: str | None = None
    created_at: datetime | None = None
    solved_at: datetime | None = None
    comment: str | None = Field(default=None, max_length=10_000)
    # The help desk's own last-change time (the envelope's occurred_at is the same moment)
    # and, for Zendesk, the requester's user id (its events carry no requester email).
    updated_at: datetime | None = None
    requester_id: str | None = None


class SurveyResponsePayload(BaseModel):
    response_id: str
    survey_type: SurveyType
    score: int
    comment: str | None = None
    # Added by surveys (issue 6); absent in older events.
    revision: int | None = Field(default=None, description="1 for a new response, +1 per amendment")
    channel: str | None = Field(default=None, description="api | email_invitation | delighted | typeform")
    campaign_id: str | None = Field(default=None, description="the survey definition that invited it")
    ticket_id: str | None = Field(default=None, description="the solved ticket a transactional CSAT is about")


class Factor(BaseModel):
    """One measure's part in a health score, in words a CSM can read."""

    measure: str
    value: float | None = Field(description="0-100, or None when the measure has no data")
    weight: float = Field(description="share of the score after renormalisation, 0-1")
    contribution: float = Field(description="points this measure adds to the score")
    detail: str


class HealthScorePayload(BaseModel):
    score: float
    band: Band
    previous_score: float | None
    previous_band: Band | None
    factors: list[Factor]
    caused_by_event_id: str
    segment: str | None = Field(default=None, description="the scorecard segment the account is in")
    # With a CSM's override in force, score/band are the override's and this is the computed one.
    computed_score: float | None = None
    overridden: bool = False


class SignalKind(StrEnum):
    RISK = "risk"  # the account may churn: a CSM should act
    EXPANSION = "expansion"  # an opportunity: seats filling up, a promoter, usage near the plan's limit


class SignalStatus(StrEnum):
    RAISED = "raised"  # the condition holds (a repeat with the same dedupe key is the same signal)
    CLEARED = "cleared"  # the condition no longer holds: an open alert for it can resolve


SIGNAL_VERSION = 2


class RiskSignalPayload(BaseModel):
    """A risk or expansion signal about one account (the envelope's `account_id`).

    Identity: `dedupe_key` names one occurrence of a signal; the same key again (a replay,
    a redelivery, a re-evaluation) is the same signal and must not notify twice. Alerts keeps
    at most one open alert per account and `signal_type`: a new occurrence while one is open
    updates it with the new evidence. A `cleared` signal says the condition behind
    `signal_type` is over for the account.

    Version 2 added `version`, `kind`, `status`, `previous_score` and `segment`; a version-1
    payload still reads (the new fields take their defaults).
    """

    version: int = SIGNAL_VERSION
    signal_type: str
    kind: SignalKind = SignalKind.RISK
    status: SignalStatus = SignalStatus.RAISED
    severity: Severity
    dedupe_key: str = Field(description="same key = same signal; alerts notify once per key")
    summary: str = Field(description="one line for a CSM, without the account's name")
    score: float | None = None
    previous_score: float | None = None
    band: Band | None = None
    previous_band: Band | None = None
    segment: str | None = Field(default=None, description="the scorecard segment the account is in")
    factors: list[Factor] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)


class HealthOverridePayload(BaseModel):
    """A CSM sets or clears a manual override of an account's health (scoring's overrides topic).

    Scoring applies it on event time like any other event, so a replay reproduces it, and
    lets it lapse once the account's event time passes `expires_at`.
    """

    action: Literal["set", "clear"]
    override_id: str = Field(min_length=1, max_length=100)
    kind: Literal["score", "band"] | None = None
    score: float | None = Field(default=None, ge=0, le=100)
    band: Band | None = None
    reason: str | None = Field(default=None, max_length=2_000)
    author: str = Field(min_length=1, max_length=200)
    expires_at: AwareDatetime | None = None


def utcnow() -> datetime:
    """Wall-clock time: only for `received_at` and operational bookkeeping, never scoring."""
    return datetime.now(UTC)
