"""The churn-risk feature vector of one folded account at one moment of event time. Pure: no I/O.

Every feature is read from the live `Model`, so a replay of the same events gives the same
vector. Two kinds:
  * fixed features (`FIXED`), the same for every customer base: activity levels and trends,
    recency, breadth, users against seats, tenure, renewal, tickets, surveys, payment;
  * per event name, the 28-day and 91-day decayed counts of the account's busiest names
    (`Model.usage_by_name`, `usage_by_name_long`): which behaviours come before churn differs
    per product, so the names become columns only when a model is fitted (`FeatureSchema`),
    each as its level, its month against its quarter, and its share of the account's usage
    (ratio metrics, as *Fighting Churn With Data* builds them: what an account does, apart
    from how much).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from services.scoring.model import (
    DAY,
    TICKET_BASELINE_HALF_LIFE,
    TICKET_RECENT_HALF_LIFE,
    USAGE_BASELINE_HALF_LIFE,
    USAGE_BY_NAME_HALF_LIFE,
    USAGE_BY_NAME_LONG_HALF_LIFE,
    USAGE_RECENT_HALF_LIFE,
    Model,
    active_users,
    decayed,
)
from shared.account_facts import PaymentStatus

FEATURES_VERSION = 2
NEVER_DAYS = 365.0  # recency and renewal distances are capped here ("never" or "far away")
OTHER_EVENTS = "other"

FIXED = (
    "usage_7d",  # decayed event counts, log1p
    "usage_28d",
    "usage_trend",  # log of recent per day against baseline per day
    "days_since_usage",
    "event_types_28d",
    "active_users_28d",
    "users_per_seat",
    "seats",
    "mrr",
    "log_tenure_days",
    "days_to_renewal",
    "renewals",
    "open_tickets",
    "severe_open_tickets",
    "tickets_7d",
    "tickets_56d",
    "nps",
    "has_nps",
    "csat",
    "has_csat",
    "payment_problem",
    "usage_91d",  # every named event's 91-day decayed count, log1p
    "usage_month_vs_quarter",  # log of the 28-day per-day rate against the 91-day one
    "events_per_active_user_28d",  # log1p
    "peer_percentile",  # the usage level's place among the segment's peers (0.5 when none)
    "has_peer_percentile",
)


@dataclass(frozen=True)
class Snapshot:
    """What is known of one account at `at` (epoch seconds): fixed features and usage by name."""

    at: float
    fixed: tuple[float, ...]
    by_name: dict[str, float]  # event name -> log1p of its 28-day decayed count
    by_name_long: dict[str, float] = field(default_factory=dict)  # -> log1p of its 91-day count


def snapshot(model: Model, at: float) -> Snapshot:
    facts = model.facts
    recent = decayed(model.u_recent, at, USAGE_RECENT_HALF_LIFE)
    baseline = decayed(model.u_base, at, USAGE_BASELINE_HALF_LIFE)
    # Per-day rates of the two counters: equal for a steady stream, so the log ratio is 0 then.
    trend = math.log(
        (recent / USAGE_RECENT_HALF_LIFE + 1e-6) / (baseline / USAGE_BASELINE_HALF_LIFE + 1e-6)
    ) if baseline > 0 else 0.0
    since_usage = NEVER_DAYS if model.last_usage is None else min((at - model.last_usage) / DAY, NEVER_DAYS)
    month_ago = at - 28 * DAY
    users, _ = active_users(model, month_ago) if model.users else (0.0, True)
    seats = facts.seats or 0
    renewal = facts.renewal_date
    to_renewal = (
        NEVER_DAYS
        if renewal is None
        else max(min((_day_start(renewal) - at) / DAY, NEVER_DAYS), -NEVER_DAYS)
    )
    open_count = severe = 0
    for status, priority, _, _, escalated, _ in model.tickets.values():
        if status not in ("solved", "closed"):
            open_count += 1
            severe += priority in ("high", "urgent") or bool(escalated)
    month_total = sum(decayed(c, at, USAGE_BY_NAME_HALF_LIFE) for c in model.usage_by_name.values())
    long_counts = {
        name: decayed(counter, at, USAGE_BY_NAME_LONG_HALF_LIFE)
        for name, counter in model.usage_by_name_long.items()
    }
    quarter_total = sum(long_counts.values())
    peer = model.peer
    nps = model.surveys.get("nps")
    csat = model.surveys.get("csat")
    fixed = (
        math.log1p(recent),
        math.log1p(baseline),
        trend,
        since_usage,
        float(sum(1 for last in model.features.values() if last >= month_ago)),
        users,
        users / seats if seats else 0.0,
        float(seats),
        math.log1p(facts.mrr or 0.0),
        # Logged: the first months differ far more than the third year from the fourth, and a
        # linear model must not extrapolate tenure beyond the ages it was fitted on.
        0.0 if model.first_at is None else math.log1p(max(at - model.first_at, 0.0) / DAY),
        to_renewal,
        1.0 if model.renewed_at is not None else 0.0,
        float(open_count),
        float(severe),
        decayed(model.t_recent, at, TICKET_RECENT_HALF_LIFE),
        decayed(model.t_base, at, TICKET_BASELINE_HALF_LIFE),
        float(nps[1]) if nps else 0.0,
        1.0 if nps else 0.0,
        float(csat[1]) if csat else 0.0,
        1.0 if csat else 0.0,
        1.0 if facts.payment_status in (PaymentStatus.FAILED, PaymentStatus.PAST_DUE) else 0.0,
        math.log1p(quarter_total),
        _rate_ratio(month_total, quarter_total),
        math.log1p(baseline / users) if users else 0.0,
        float(peer[0]) if peer else 0.5,
        1.0 if peer else 0.0,
    )
    by_name = {
        name: math.log1p(decayed(counter, at, USAGE_BY_NAME_HALF_LIFE))
        for name, counter in model.usage_by_name.items()
    }
    return Snapshot(at, fixed, by_name, {name: math.log1p(v) for name, v in long_counts.items()})


def _rate_ratio(month: float, quarter: float) -> float:
    """Log of the per-day rate of a 28-day half-life count against a 91-day one: 0 for a steady
    stream, negative when the last weeks are quieter than the quarter."""
    if quarter <= 0:
        return 0.0
    per_day = month / USAGE_BY_NAME_HALF_LIFE, quarter / USAGE_BY_NAME_LONG_HALF_LIFE
    return math.log((per_day[0] + 1e-6) / (per_day[1] + 1e-6))


def _day_start(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class FeatureSchema:
    """The columns a fitted model reads: the fixed features, then per chosen event name its
    28-day level, then "other" (every other name's activity, summed before the log), then per
    chosen name its month against its quarter and its share of the month's usage."""

    version: int
    event_names: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (
            *FIXED,
            *(f"events:{n}" for n in self.event_names),
            f"events:{OTHER_EVENTS}",
            *(f"month_vs_quarter:{n}" for n in self.event_names),
            *(f"share:{n}" for n in self.event_names),
        )

    def row(self, snap: Snapshot) -> list[float]:
        chosen = [snap.by_name.get(name, 0.0) for name in self.event_names]
        other = sum(math.expm1(v) for n, v in snap.by_name.items() if n not in self.event_names)
        month_total = sum(math.expm1(v) for v in snap.by_name.values())
        trends = [
            _rate_ratio(math.expm1(snap.by_name.get(n, 0.0)), math.expm1(snap.by_name_long.get(n, 0.0)))
            for n in self.event_names
        ]
        shares = [math.expm1(v) / month_total if month_total > 0 else 0.0 for v in chosen]
        return [*snap.fixed, *chosen, math.log1p(other), *trends, *shares]

    @classmethod
    def from_snapshots(cls, snaps: list[Snapshot], max_names: int = 20) -> FeatureSchema:
        """The names most accounts use: the others pool into "other"."""
        seen: dict[str, int] = {}
        for snap in snaps:
            for name in snap.by_name:
                seen[name] = seen.get(name, 0) + 1
        names = sorted(seen, key=lambda n: (-seen[n], n))[:max_names]
        return cls(FEATURES_VERSION, tuple(sorted(names)))
