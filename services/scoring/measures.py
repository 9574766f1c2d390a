"""The scorecard's measures: each maps an account's state to 0-100 and a sentence. Pure.

A measure without data returns `value=None` and says why; the scorecard then leaves it
out and renormalises the other weights, rather than treat "no data" as zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.scoring.decay import rate_per_day
from services.scoring.state import (
    BASELINE_HALF_LIFE_DAYS,
    RECENT_HALF_LIFE_DAYS,
    AccountState,
)
from shared.events import SurveyType, TicketPriority

BASELINE_MIN_DAYS = 14
RECENCY_FULL_DAYS = 2.0
RECENCY_ZERO_DAYS = 30.0


@dataclass(frozen=True)
class Measurement:
    measure: str
    value: float | None
    detail: str


def _clamp(value: float) -> float:
    return max(0.0, min(100.0, value))


def _days(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds() / 86_400.0


def usage_volume(state: AccountState) -> Measurement:
    """Usage over the last week or so against the account's own 4-week baseline."""
    name = "usage_volume"
    if state.usage_recent is None or state.usage_baseline is None or state.first_usage_at is None:
        return Measurement(name, None, "no product usage yet: left out")
    assert state.clock is not None
    history = _days(state.clock, state.first_usage_at)
    if history < BASELINE_MIN_DAYS:
        return Measurement(name, None, f"not enough history for a baseline yet ({history:.0f} of "
                           f"{BASELINE_MIN_DAYS} days): left out")
    recent = rate_per_day(state.usage_recent.decayed().at(state.clock, RECENT_HALF_LIFE_DAYS),
                          RECENT_HALF_LIFE_DAYS, history)
    baseline = rate_per_day(
        state.usage_baseline.decayed().at(state.clock, BASELINE_HALF_LIFE_DAYS),
        BASELINE_HALF_LIFE_DAYS, history)
    ratio = recent / baseline if baseline > 0 else 0.0
    if ratio >= 1:
        detail = f"usage at {ratio:.0%} of the account's 4-week baseline"
    else:
        detail = f"usage down {1 - ratio:.0%} against the account's 4-week baseline"
    return Measurement(name, round(_clamp(100 * ratio), 1), detail)


def recency(state: AccountState) -> Measurement:
    name = "recency"
    if state.last_usage_at is None or state.clock is None:
        return Measurement(name, None, "no product activity yet: left out")
    idle = _days(state.clock, state.last_usage_at)
    span = RECENCY_ZERO_DAYS - RECENCY_FULL_DAYS
    value = 100.0 if idle <= RECENCY_FULL_DAYS else _clamp(100 * (RECENCY_ZERO_DAYS - idle) / span)
    when = "today" if idle < 1 else f"{idle:.0f} day{'s' if round(idle) != 1 else ''} ago"
    return Measurement(name, round(value, 1), f"last product activity {when}")


def nps(state: AccountState) -> Measurement:
    name = "nps"
    answer = state.latest_survey.get(SurveyType.NPS)
    if answer is None:
        return Measurement(name, None, "no NPS response yet: left out")
    score = answer.score
    if score >= 9:
        return Measurement(name, 100.0, f"latest NPS response {score} (promoter)")
    if score >= 7:
        return Measurement(name, 70.0, f"latest NPS response {score} (passive)")
    return Measurement(name, float(score * 5), f"latest NPS response {score} (detractor)")


def open_tickets(state: AccountState) -> Measurement:
    name = "open_tickets"
    if not state.tickets:
        return Measurement(name, None, "no support tickets seen yet: left out")
    open_now = [t for t in state.tickets.values() if t.status.is_open]
    severe = sum(1 for t in open_now if t.priority in (TicketPriority.HIGH, TicketPriority.URGENT))
    value = _clamp(100 - 20 * (len(open_now) - severe) - 40 * severe)
    detail = f"{len(open_now)} open ticket{'s' if len(open_now) != 1 else ''}"
    if severe:
        detail += f" ({severe} high priority)"
    return Measurement(name, value, detail)


MEASURES = (usage_volume, recency, nps, open_tickets)
