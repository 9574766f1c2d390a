"""The arithmetic behind the benchmark figures. Pure: lists in, numbers out, no I/O.

- `roc_auc`: how well a risk ranking separates positives from negatives: the probability that
  a random positive ranks above a random negative, ties counting one half (the Mann-Whitney U
  statistic divided by the number of pairs).
- `percentile`: nearest-rank percentile (the smallest value with at least q% of values at or
  below it), the usual choice for latency figures.
- `precision`, `median`: the plain definitions, None for no data rather than 0.
- `weekly_observations`, `alert_is_right`, `lead_times`: how the health score and the alerts are
  judged against the simulator's ground truth (definitions in their docstrings).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

CHURN_HORIZON_DAYS = 30
ALERT_CHURN_HORIZON_DAYS = 90
DECLINE_WINDOW_BEFORE_DAYS = 7
DECLINE_WINDOW_AFTER_DAYS = 14
UNHEALTHY_BELOW = 0.45


def roc_auc(risk: Sequence[float], positive: Sequence[bool]) -> float | None:
    """P(risk of a random positive > risk of a random negative) + ½ P(equal); None without both kinds."""
    if len(risk) != len(positive):
        raise ValueError("risk and positive must have the same length")
    positives = sum(1 for p in positive if p)
    negatives = len(positive) - positives
    if positives == 0 or negatives == 0:
        return None
    # Mid-ranks: tied values share the mean of the ranks they span.
    order = sorted(range(len(risk)), key=lambda i: risk[i])
    ranks = [0.0] * len(risk)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and risk[order[end + 1]] == risk[order[start]]:
            end += 1
        mid_rank = (start + end) / 2 + 1
        for k in range(start, end + 1):
            ranks[order[k]] = mid_rank
        start = end + 1
    rank_sum = sum(rank for rank, p in zip(ranks, positive, strict=True) if p)
    u = rank_sum - positives * (positives + 1) / 2
    return u / (positives * negatives)


def precision(right: Sequence[bool]) -> float | None:
    return sum(right) / len(right) if right else None


def median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError("q must be in (0, 100]")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


# --- judging against the ground truth ----------------------------------------------------------


@dataclass(frozen=True)
class ScorePoint:
    at: datetime  # event time of the score change
    score: float


@dataclass(frozen=True)
class AccountOutcome:
    """What the simulator says happened to one account."""

    churned_on: date | None
    declines: Sequence[tuple[date, date | None]]  # (start, end or None while ongoing)
    health: Mapping[date, float]  # hidden health per day while a customer


@dataclass(frozen=True)
class Observation:
    account_id: str
    day: date
    score: float
    churns_within_horizon: bool


def score_at(history: Sequence[ScorePoint], moment: datetime) -> float | None:
    """The latest score at or before `moment`; `history` sorted by time."""
    index = bisect.bisect_right([p.at for p in history], moment)
    return history[index - 1].score if index else None


def weekly_observations(
    histories: Mapping[str, Sequence[ScorePoint]], outcomes: Mapping[str, AccountOutcome],
    first_day: date, last_day: date, *, warm_up_days: int = 28, every_days: int = 7,
    horizon_days: int = CHURN_HORIZON_DAYS,
) -> list[Observation]:
    """At the end of every `every_days`-th day, each customer's score and whether it churns next.

    Observation days run from `first_day + warm_up_days` (scores need a baseline) while a full
    horizon still fits before `last_day`. An account is observed on a day when it is still a
    customer then and has a score by then; it is positive when it churns within the next
    `horizon_days` days.
    """
    observations: list[Observation] = []
    day = first_day + timedelta(days=warm_up_days)
    while day + timedelta(days=horizon_days) <= last_day:
        end_of_day = datetime.combine(day + timedelta(days=1), time(0), UTC)
        for account_id, outcome in outcomes.items():
            if outcome.churned_on is not None and outcome.churned_on <= day:
                continue
            history = histories.get(account_id)
            score = score_at(history, end_of_day) if history else None
            if score is None:
                continue
            churns = outcome.churned_on is not None and (outcome.churned_on - day).days <= horizon_days
            observations.append(Observation(account_id, day, score, churns))
        day += timedelta(days=every_days)
    return observations


def alert_is_right(outcome: AccountOutcome, alerted_on: date) -> bool:
    """A risk alert is right when the account churns within 90 days after it, or it falls in
    a true decline (from a week before its start to two weeks after its end), or the account's
    hidden health was below 0.45 that day."""
    if outcome.churned_on is not None and \
            0 <= (outcome.churned_on - alerted_on).days <= ALERT_CHURN_HORIZON_DAYS:
        return True
    for start, end in outcome.declines:
        opens = start - timedelta(days=DECLINE_WINDOW_BEFORE_DAYS)
        closes = None if end is None else end + timedelta(days=DECLINE_WINDOW_AFTER_DAYS)
        if opens <= alerted_on and (closes is None or alerted_on <= closes):
            return True
    health = outcome.health.get(alerted_on)
    return health is not None and health < UNHEALTHY_BELOW


def lead_times(alert_days: Mapping[str, Sequence[date]], outcomes: Mapping[str, AccountOutcome],
               horizon_days: int = ALERT_CHURN_HORIZON_DAYS) -> dict[str, int]:
    """Per churned account, days from its first risk alert in the `horizon_days` before churn to churn.

    Alerts earlier than the window are about something else; an account that churned with
    no alert in the window is absent from the answer (a missed churn).
    """
    leads: dict[str, int] = {}
    for account_id, outcome in outcomes.items():
        if outcome.churned_on is None:
            continue
        churned_on = outcome.churned_on
        window = [(churned_on - day).days for day in alert_days.get(account_id, ())
                  if 0 <= (churned_on - day).days <= horizon_days]
        if window:
            leads[account_id] = max(window)
    return leads
