"""What scoring remembers per account, and how each event changes it. Pure: no I/O.

The state is small and JSON-serialisable (stored as JSONB). Every rule uses event time;
the account's clock is the latest `occurred_at` it has seen.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field, ValidationError

from services.scoring.decay import DecayedCounter
from shared.events import (
    SURVEY_SCORE_RANGES,
    Envelope,
    EventType,
    SurveyResponsePayload,
    SurveyType,
    TicketPayload,
    TicketPriority,
    TicketStatus,
    TraitsPayload,
)

RECENT_HALF_LIFE_DAYS = 7.0
BASELINE_HALF_LIFE_DAYS = 28.0
# Closed tickets are remembered only so a late, older update cannot reopen them.
MAX_CLOSED_TICKETS = 50
MAX_SIGNALLED_RESPONSES = 20
USAGE_TYPES = (EventType.TRACK, EventType.PAGE, EventType.SCREEN)


class Counter(BaseModel):
    value: float
    as_of: datetime

    def decayed(self) -> DecayedCounter:
        return DecayedCounter(self.value, self.as_of)

    @classmethod
    def of(cls, counter: DecayedCounter) -> Counter:
        return cls(value=counter.value, as_of=counter.as_of)


class Ticket(BaseModel):
    status: TicketStatus
    priority: TicketPriority
    updated_at: datetime


class SurveyAnswer(BaseModel):
    response_id: str
    score: int
    comment: str | None = None
    submitted_at: datetime


class AccountState(BaseModel):
    account_name: str | None = None
    clock: datetime | None = None
    first_usage_at: datetime | None = None
    last_usage_at: datetime | None = None
    usage_recent: Counter | None = None
    usage_baseline: Counter | None = None
    latest_survey: dict[SurveyType, SurveyAnswer] = Field(default_factory=dict)
    tickets: dict[str, Ticket] = Field(default_factory=dict)
    signalled_responses: list[str] = Field(default_factory=list)


class UnusableEvent(ValueError):
    """The event's payload does not fit its type: it goes to the dead-letter topic."""


def apply_event(state: AccountState, event: Envelope) -> None:
    """Change `state` by `event`, in place.

    The payload is validated before anything changes, so an unusable event (raised as
    `UnusableEvent`) leaves the state as it was.
    """
    at = event.occurred_at
    try:
        if event.type is EventType.GROUP:
            traits = event.payload_as(TraitsPayload)
        elif event.type is EventType.TICKET:
            ticket = event.payload_as(TicketPayload)
        elif event.type is EventType.SURVEY_RESPONSE:
            response = event.payload_as(SurveyResponsePayload)
    except ValidationError as exc:
        raise UnusableEvent(f"{event.type} payload: {exc}") from exc
    if event.type is EventType.SURVEY_RESPONSE:
        # Surveys validates on the way in; anything else on the topic would push a measure
        # outside 0-100 (an NPS of 15 is not a promoter, -3 not a detractor).
        valid = SURVEY_SCORE_RANGES[response.survey_type]
        if response.score not in valid:
            raise UnusableEvent(
                f"{response.survey_type} score {response.score} is outside {valid.start}..{valid.stop - 1}"
            )
    state.clock = at if state.clock is None else max(state.clock, at)
    if event.type in USAGE_TYPES:
        _apply_usage(state, at)
    elif event.type is EventType.GROUP:
        _apply_group(state, traits)
    elif event.type is EventType.TICKET:
        _apply_ticket(state, ticket, at)
    elif event.type is EventType.SURVEY_RESPONSE:
        _apply_survey(state, response, at)


def _apply_usage(state: AccountState, at: datetime) -> None:
    recent = state.usage_recent.decayed() if state.usage_recent else DecayedCounter(0.0, at)
    baseline = state.usage_baseline.decayed() if state.usage_baseline else DecayedCounter(0.0, at)
    state.usage_recent = Counter.of(recent.add(at, RECENT_HALF_LIFE_DAYS))
    state.usage_baseline = Counter.of(baseline.add(at, BASELINE_HALF_LIFE_DAYS))
    state.first_usage_at = at if state.first_usage_at is None else min(state.first_usage_at, at)
    state.last_usage_at = at if state.last_usage_at is None else max(state.last_usage_at, at)


def _apply_group(state: AccountState, traits: TraitsPayload) -> None:
    name = traits.traits.get("name")
    if isinstance(name, str) and name.strip():
        state.account_name = name.strip()


def _apply_ticket(state: AccountState, ticket: TicketPayload, at: datetime) -> None:
    known = state.tickets.get(ticket.ticket_id)
    if known is not None and known.updated_at > at:
        return  # a late, older update: the ticket has moved on since
    state.tickets[ticket.ticket_id] = Ticket(status=ticket.status, priority=ticket.priority, updated_at=at)
    closed = sorted((t.updated_at, tid) for tid, t in state.tickets.items() if not t.status.is_open)
    for _, ticket_id in closed[: max(len(closed) - MAX_CLOSED_TICKETS, 0)]:
        del state.tickets[ticket_id]


def _apply_survey(state: AccountState, response: SurveyResponsePayload, at: datetime) -> None:
    current = state.latest_survey.get(response.survey_type)
    # An amendment of the latest response always applies; otherwise the newest answer wins.
    if current is None or current.response_id == response.response_id or current.submitted_at <= at:
        state.latest_survey[response.survey_type] = SurveyAnswer(
            response_id=response.response_id, score=response.score, comment=response.comment, submitted_at=at
        )


def remember_signalled(state: AccountState, response_id: str) -> None:
    state.signalled_responses = [*state.signalled_responses, response_id][-MAX_SIGNALLED_RESPONSES:]
