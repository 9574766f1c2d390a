"""A model's contributions in words a CSM reads: what each feature column is, its value against
the typical account's, and how far it moves the risk. Pure: no I/O."""

from __future__ import annotations

import math

# column -> (what it is, whether the stored value is log1p of a count)
LABELS: dict[str, tuple[str, bool]] = {
    "usage_7d": ("events in the last week (decayed)", True),
    "usage_28d": ("events in the last 4 weeks (decayed)", True),
    "usage_trend": ("usage trend (log of recent against usual daily rate)", False),
    "days_since_usage": ("days since the last use", False),
    "event_types_28d": ("distinct features used in 28 days", False),
    "active_users_28d": ("active users in 28 days", False),
    "users_per_seat": ("active users per seat", False),
    "seats": ("seats", False),
    "mrr": ("MRR", True),
    "log_tenure_days": ("tenure in days", True),
    "days_to_renewal": ("days to renewal", False),
    "renewals": ("renewals seen", False),
    "open_tickets": ("open tickets", False),
    "severe_open_tickets": ("open high-severity tickets", False),
    "tickets_7d": ("tickets this week (decayed)", False),
    "tickets_56d": ("tickets in 8 weeks (decayed)", False),
    "nps": ("latest NPS answer", False),
    "has_nps": ("has answered NPS", False),
    "csat": ("latest CSAT answer", False),
    "has_csat": ("has answered CSAT", False),
    "payment_problem": ("payment failed or past due", False),
    "usage_91d": ("events in the last quarter (decayed)", True),
    "usage_month_vs_quarter": ("this month's usage against the quarter's (log of the daily rates)", False),
    "events_per_active_user_28d": ("events per active user in 28 days", True),
    "peer_percentile": ("usage rank among the segment's peers (0 quietest, 1 busiest)", False),
    "has_peer_percentile": ("has enough segment peers to compare with", False),
}


def _shown(column: str, value: float) -> tuple[str, float, bool]:
    if column.startswith("events:"):
        name = column.removeprefix("events:")
        label = "events of other types" if name == "other" else f"{name} events"
        return f"{label} in 28 days (decayed)", math.expm1(value), True
    if column.startswith("month_vs_quarter:"):
        name = column.removeprefix("month_vs_quarter:")
        return f"{name} events this month against the quarter (log of the daily rates)", value, False
    if column.startswith("share:"):
        return f"{column.removeprefix('share:')} events' share of the month's usage", value, False
    label, counted = LABELS.get(column, (column.replace("_", " "), False))
    return label, math.expm1(value) if counted else value, counted


def _number(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.2g}"


def words(column: str, value: float, reference: float, previous: float | None, contribution: float) -> str:
    """One contribution in words, against the typical account and the account's own last change:
    e.g. "message events in 28 days (decayed): 3, 70% below the typical account's 10 (was 8),
    raises the risk 6 points"."""
    label, shown, counted = _shown(column, value)
    _, usual, _ = _shown(column, reference)
    if counted and usual >= 1:
        change = (shown - usual) / usual * 100
        against = (
            f"{abs(change):.0f}% {'below' if change < 0 else 'above'} the typical account's {_number(usual)}"
            if abs(change) >= 1
            else f"as the typical account's {_number(usual)}"
        )
    else:
        against = f"the typical account's {_number(usual)}"
    text = f"{label}: {_number(shown)}, {against}"
    if previous is not None and abs(previous - value) > 1e-9:
        text += f" (was {_number(_shown(column, previous)[1])})"
    points = abs(contribution) * 100
    direction = "raises" if contribution > 0 else "lowers"
    unit = "point" if round(points) == 1 else "points"
    return f"{text}, {direction} the risk {points:.0f} {unit}" if points >= 0.5 else text
