"""The scorecard's measures: each reads the account model at a moment and gives 0-100. Pure.

A measure returns `(value, reading)`: value None means "no data" (the scorecard leaves it out
and renormalises), and the reading holds the numbers behind it, which `describe` turns into
a sentence a CSM can read ("product usage down 45% vs the account's 4-week baseline"). Values
are computed on every event; sentences only when someone will read them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from services.scoring import config as cfg
from services.scoring.model import (
    DAY,
    TICKET_BASELINE_HALF_LIFE,
    TICKET_RECENT_HALF_LIFE,
    USAGE_BASELINE_HALF_LIFE,
    USAGE_RECENT_HALF_LIFE,
    Model,
    active_users,
    decayed,
)
from shared.account_facts import PaymentStatus

Reading = tuple[Any, ...]
Result = tuple[float | None, Reading]


def clamp(value: float) -> float:
    return 0.0 if value < 0 else 100.0 if value > 100 else value


def rate_per_day(counter: list[float] | None, now: float, half_life: float, age: float) -> float:
    """Events per day of a steady stream that would bring the decayed counter to its value.

    `age` (seconds since the stream began) corrects the warm-up: a counter a few half-lives
    old has not filled up yet, and a young long-memory counter would otherwise read as growth.
    """
    filled = 1.0 - math.exp2(-age / half_life) if age > 0 else 1.0
    return decayed(counter, now, half_life) * math.log(2) / (half_life / DAY) / max(filled, 1e-9)


def usage_ratio(model: Model, now: float, min_history_days: float) -> tuple[float, float, float] | None:
    """(recent / baseline, recent per week, baseline per week), or None before the baseline exists."""
    if model.u_base is None or model.first_usage is None:
        return None
    age = now - model.first_usage
    if age < min_history_days * DAY:
        return None
    recent = rate_per_day(model.u_recent, now, USAGE_RECENT_HALF_LIFE, age)
    baseline = rate_per_day(model.u_base, now, USAGE_BASELINE_HALF_LIFE, age)
    return (recent / baseline if baseline > 0 else 0.0), recent * 7, baseline * 7


def ticket_ratio(model: Model, now: float, min_history_days: float) -> tuple[float, float] | None:
    """(recent / baseline rate of new tickets, tickets in about the last week), or None."""
    if model.t_base is None or model.first_at is None:
        return None
    age = now - model.first_at
    if age < min_history_days * DAY:
        return None
    recent = rate_per_day(model.t_recent, now, TICKET_RECENT_HALF_LIFE, age)
    baseline = rate_per_day(model.t_base, now, TICKET_BASELINE_HALF_LIFE, age)
    return (recent / baseline if baseline > 0 else 0.0), decayed(model.t_recent, now, TICKET_RECENT_HALF_LIFE)


def renewal_day(renewal: date) -> float:
    return datetime(renewal.year, renewal.month, renewal.day, tzinfo=UTC).timestamp()


def onboarding_start(model: Model) -> tuple[float, bool] | None:
    """(start, from a trait?): the onboarding_started_at/created_at trait, else first activity."""
    started = model.facts.onboarding_started_at
    if started is not None:
        return started.timestamp(), True
    return (model.first_at, False) if model.first_at is not None else None


# --- the measures ---------------------------------------------------------------------------


def usage_trend(model: Model, p: cfg.UsageTrend, card: cfg.Scorecard, now: float) -> Result:
    if model.first_usage is None:
        return None, ("none",)
    found = usage_ratio(model, now, p.min_history_days)
    if found is None:
        return None, ("young", (now - model.first_usage) / DAY, p.min_history_days)
    ratio, recent, baseline = found
    return clamp(100 * ratio), ("ratio", ratio, recent, baseline)


def active_users_measure(model: Model, p: cfg.ActiveUsers, card: cfg.Scorecard, now: float) -> Result:
    if not model.users:
        return None, ("none",)
    if model.first_usage is None or now - model.first_usage < p.min_history_days * DAY:
        return None, ("young", p.min_history_days)
    seats = model.facts.seats
    estimate, exact = active_users(model, now - p.window_days * DAY)
    if not seats:
        return None, ("no_seats", estimate, exact, p.window_days)
    share = estimate / seats
    return clamp(100 * share / p.healthy_share), ("share", estimate, exact, seats, p.window_days)


def feature_breadth(model: Model, p: cfg.FeatureBreadth, card: cfg.Scorecard, now: float) -> Result:
    if model.first_usage is None:
        return None, ("none",)
    if now - model.first_usage < p.min_history_days * DAY:
        return None, ("young", p.min_history_days)
    since = now - p.window_days * DAY
    used = sum(1 for last in model.features.values() if last >= since)
    target = len(card.key_features) or p.target_features
    return clamp(100 * used / target), ("used", used, target, bool(card.key_features), p.window_days)


def recency(model: Model, p: cfg.Recency, card: cfg.Scorecard, now: float) -> Result:
    if model.last_usage is None:
        return None, ("none",)
    idle = max(0.0, (now - model.last_usage) / DAY)
    if idle <= p.full_days:
        return 100.0, ("idle", idle)
    return clamp(100 * (p.zero_days - idle) / (p.zero_days - p.full_days)), ("idle", idle)


def peer_usage(model: Model, p: cfg.PeerUsage, card: cfg.Scorecard, now: float) -> Result:
    """The account's usage level among its segment's peers, as placed at its last evaluation."""
    placed = model.peer
    if model.first_usage is None:
        return None, ("none",)
    if placed is None or placed[3] < p.min_peers:
        return None, ("few", 0 if placed is None else placed[3], p.min_peers)
    percentile, level, median, peers = placed
    return clamp(100 * percentile / p.healthy_percentile), ("placed", percentile, level, median, peers)


def open_tickets(model: Model, p: cfg.OpenTickets, card: cfg.Scorecard, now: float) -> Result:
    if not model.tickets:
        return None, ("none",)
    count = severe = urgent = aged = 0
    oldest = 0.0
    for status, priority, opened, _, escalated, _ in model.tickets.values():
        if status in ("solved", "closed"):
            continue
        count += 1
        if priority in ("high", "urgent") or escalated:
            severe += 1
        if priority == "urgent" or escalated:
            urgent += 1
        age = (now - opened) / DAY
        if age >= p.aged_after_days:
            aged += 1
        oldest = max(oldest, age)
    value = (
        100 - p.points_per_open * (count - severe) - p.points_per_severe * severe - p.points_per_aged * aged
    )
    return clamp(value), ("open", count, severe, urgent, aged, oldest)


def ticket_rate(model: Model, p: cfg.TicketRate, card: cfg.Scorecard, now: float) -> Result:
    if model.t_base is None:
        return None, ("none",)
    found = ticket_ratio(model, now, p.min_history_days)
    if found is None:
        return None, ("young", p.min_history_days)
    ratio, recent = found
    if ratio <= 1:
        return 100.0, ("ratio", ratio, recent)
    return clamp(100 * (p.zero_at_ratio - ratio) / (p.zero_at_ratio - 1)), ("ratio", ratio, recent)


def _survey(model: Model, survey_type: str) -> list[Any] | None:
    return model.surveys.get(survey_type)


def nps(model: Model, p: cfg.Nps, card: cfg.Scorecard, now: float) -> Result:
    latest = _survey(model, "nps")
    if latest is None:
        return None, ("none",)
    score, previous = latest[1], latest[5]
    value = 100.0 if score >= 9 else 70.0 if score >= 7 else float(score * 5)
    if previous is not None and score < previous:
        value -= p.trend_points
    return clamp(value), ("nps", score, previous, (now - latest[2]) / DAY)


def csat(model: Model, p: cfg.Csat, card: cfg.Scorecard, now: float) -> Result:
    latest = _survey(model, "csat")
    if latest is None:
        return None, ("none",)
    return (latest[1] - 1) / 4 * 100, ("csat", latest[1], latest[5], (now - latest[2]) / DAY)


def ces(model: Model, p: cfg.Ces, card: cfg.Scorecard, now: float) -> Result:
    latest = _survey(model, "ces")
    if latest is None:
        return None, ("none",)
    return (latest[1] - 1) / 6 * 100, ("ces", latest[1], latest[5], (now - latest[2]) / DAY)


def payment(model: Model, p: cfg.Payment, card: cfg.Scorecard, now: float) -> Result:
    status = model.facts.payment_status
    if status is None:
        return None, ("none",)
    value = {
        PaymentStatus.CURRENT: 100.0,
        PaymentStatus.FAILED: p.failed_value,
        PaymentStatus.PAST_DUE: p.past_due_value,
    }[status]
    return value, ("status", status.value)


def renewal(model: Model, p: cfg.Renewal, card: cfg.Scorecard, now: float) -> Result:
    renewal_date = model.facts.renewal_date
    if renewal_date is None:
        return None, ("none",)
    due = renewal_day(renewal_date)
    days = (due - now) / DAY
    renewed = model.renewed_at is not None and model.renewed_at >= due - p.horizon_days * DAY
    if renewed:
        return 100.0, ("renewed", renewal_date.isoformat())
    if days < 0:
        return 0.0, ("overdue", -days, renewal_date.isoformat())
    if days >= p.horizon_days:
        return 100.0, ("days", days, renewal_date.isoformat())
    return p.value_at_date + (100 - p.value_at_date) * days / p.horizon_days, (
        "days",
        days,
        renewal_date.isoformat(),
    )


def onboarding(model: Model, p: cfg.Onboarding, card: cfg.Scorecard, now: float) -> Result:
    if not card.milestones:
        return None, ("no_milestones",)
    start = onboarding_start(model)
    if start is None:
        return None, ("none",)
    began, from_trait = start
    if model.milestone_at is not None and model.milestone_at >= began - DAY:
        day = max(0.0, (model.milestone_at - began) / DAY)
        return (100.0 if day <= p.target_days else p.late_value), ("reached", day, p.target_days, from_trait)
    elapsed = max(0.0, (now - began) / DAY)
    return clamp(100 * (1 - elapsed / p.target_days)), ("waiting", elapsed, p.target_days, from_trait)


MEASURES: dict[str, Callable[[Model, Any, cfg.Scorecard, float], Result]] = {
    "usage_trend": usage_trend,
    "active_users": active_users_measure,
    "feature_breadth": feature_breadth,
    "recency": recency,
    "peer_usage": peer_usage,
    "open_tickets": open_tickets,
    "ticket_rate": ticket_rate,
    "nps": nps,
    "csat": csat,
    "ces": ces,
    "payment": payment,
    "renewal": renewal,
    "onboarding": onboarding,
}


# --- plain words ----------------------------------------------------------------------------


def _plural(count: float, word: str) -> str:
    n = round(count)
    return f"{n} {word}{'' if n == 1 else 's'}"


def _ago(days: float) -> str:
    if days < 1:
        return "today"
    return f"{_plural(days, 'day')} ago"


def _survey_words(kind: str, score: int, previous: int | None, age: float) -> str:
    scale = {"nps": "", "csat": " of 5", "ces": " of 7"}[kind]
    label = kind.upper()
    words = f"latest {label} response {score}{scale}"
    if kind == "nps":
        words += " (promoter)" if score >= 9 else " (passive)" if score >= 7 else " (detractor)"
    if previous is not None and previous != score:
        words += f", {'down' if score < previous else 'up'} from {previous}"
    if age >= 1:
        words += f", {_ago(age)}"
    return words


def describe(measure: str, reading: Reading) -> str:
    """The reading of a measure in words a CSM can act on."""
    kind = reading[0]
    if measure == "usage_trend":
        if kind == "none":
            return "no product usage yet: left out"
        if kind == "young":
            return (
                f"not enough history for a usage baseline yet ({reading[1]:.0f} of "
                f"{reading[2]:.0f} days): left out"
            )
        ratio, recent, baseline = reading[1:]
        if abs(ratio - 1) < 0.05:
            trend = "product usage steady"
        elif ratio < 1:
            trend = f"product usage down {1 - ratio:.0%}"
        else:
            trend = f"product usage up {ratio - 1:.0%}"
        return (
            f"{trend} vs the account's 4-week baseline ({recent:,.0f} events a week against {baseline:,.0f})"
        )
    if measure == "active_users":
        if kind == "none":
            return "no product users seen yet: left out"
        if kind == "young":
            return f"less than {reading[1]:.0f} days of product usage to count active users: left out"
        if kind == "no_seats":
            about = "" if reading[2] else "about "
            return (
                f"{about}{_plural(reading[1], 'user')} active in the last {reading[3]:.0f} days, "
                "but the seats trait is unknown: left out"
            )
        estimate, exact, seats, window = reading[1:]
        about = "" if exact else "about "
        return (
            f"{about}{round(estimate)} of {seats} seats active in the last {window:.0f} days "
            f"({estimate / seats:.0%})"
        )
    if measure == "feature_breadth":
        if kind == "none":
            return "no product usage yet: left out"
        if kind == "young":
            return f"less than {reading[1]:.0f} days of product usage to judge feature breadth: left out"
        used, target, keyed, window = reading[1:]
        if keyed:
            return f"{used} of {target} key features used in the last {window:.0f} days"
        return f"{_plural(used, 'distinct feature')} used in the last {window:.0f} days ({target} expected)"
    if measure == "recency":
        if kind == "none":
            return "no product activity yet: left out"
        return f"last product activity {_ago(reading[1])}"
    if measure == "peer_usage":
        if kind == "none":
            return "no product usage yet: left out"
        if kind == "few":
            return (
                f"not enough peers in the segment to compare with yet ({reading[1]} of {reading[2]}): "
                "left out"
            )
        percentile, level, median, peers = reading[1:]
        if median <= 0:
            against = "most of the segment's accounts show no usage"
        elif abs(level / median - 1) < 0.05:
            against = "usage at the segment median"
        elif level < median:
            against = f"usage {1 - level / median:.0%} below the segment median"
        else:
            against = f"usage {level / median - 1:.0%} above the segment median"
        return (
            f"{against} ({level:,.0f} events a week against {median:,.0f}; busier than "
            f"{percentile:.0%} of {peers} peer accounts)"
        )
    if measure == "open_tickets":
        if kind == "none":
            return "no support tickets seen yet: left out"
        count, severe, _, aged, oldest = reading[1:]
        if count == 0:
            return "no open support tickets"
        words = _plural(count, "open ticket")
        notes = []
        if severe:
            notes.append(f"{severe} high priority or escalated")
        if aged:
            notes.append(f"{aged} open over a week")
        if notes:
            words += f" ({', '.join(notes)})"
        return words + f", oldest opened {_ago(oldest)}"
    if measure == "ticket_rate":
        if kind == "none":
            return "no support tickets seen yet: left out"
        if kind == "young":
            return f"less than {reading[1]:.0f} days of history for a ticket baseline: left out"
        ratio, recent = reading[1:]
        if ratio <= 1.1:
            return f"new tickets at or below the account's 8-week rate ({recent:.1f} in about a week)"
        return f"new tickets at {ratio:.1f}x the account's 8-week rate ({recent:.1f} in about a week)"
    if measure in ("nps", "csat", "ces"):
        if kind == "none":
            return f"no {measure.upper()} response yet: left out"
        return _survey_words(measure, reading[1], reading[2], reading[3])
    if measure == "payment":
        if kind == "none":
            return "payment status unknown: left out"
        return {
            "current": "payments current",
            "failed": "last payment failed",
            "past_due": "invoice past due",
        }[reading[1]]
    if measure == "renewal":
        if kind == "none":
            return "renewal date unknown: left out"
        if kind == "renewed":
            return f"renewed for the term ending {reading[1]}"
        if kind == "overdue":
            return f"renewal date {reading[2]} passed {_ago(reading[1])} with no renewal recorded"
        return f"renews in {_plural(reading[1], 'day')} ({reading[2]})"
    if measure == "onboarding":
        if kind == "no_milestones":
            return "no value milestones configured: left out"
        if kind == "none":
            return "onboarding start unknown: left out"
        source = "" if reading[3] else " (counted from the first activity seen)"
        if kind == "reached":
            return f"first value reached on day {reading[1]:.0f} (target {reading[2]:.0f}){source}"
        return f"no value milestone yet: day {reading[1]:.0f} of {reading[2]:.0f}{source}"
    return measure
