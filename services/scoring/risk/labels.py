"""Labels from outcomes: did the account churn within the horizon after a snapshot? Pure.

Censoring: a snapshot whose horizon has not fully passed in event time (by `observed_until`)
gets no label unless the churn already happened within it; a snapshot taken after the account
churned is no observation at all (there is nothing left to predict).
"""

from __future__ import annotations

from services.scoring.model import DAY


def churn_label(
    at: float, churned_at: float | None, observed_until: float, horizon_days: float
) -> int | None:
    """1 churned within the horizon, 0 known not to have, None not known (yet)."""
    horizon_end = at + horizon_days * DAY
    if churned_at is not None:
        if churned_at <= at:
            return None
        if churned_at <= horizon_end:
            return 1
    return 0 if horizon_end <= observed_until else None
