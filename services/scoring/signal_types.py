"""The names of the signal types scoring can raise. A leaf: imports nothing of scoring's own.

The scorecard (config) checks `signals.disabled` against these names and the rules (signals)
raise them; keeping the names here lets both import them without importing each other.
"""

from __future__ import annotations

RISK_TYPES = (
    "entered_red",
    "band_dropped",
    "score_drop",
    "usage_decline",
    "ticket_spike",
    "high_severity_ticket",
    "detractor_response",
    "champion_change",
    "competitor_mentioned",
    "payment_issue",
    "renewal_at_risk",
    "onboarding_behind",
    "churn_risk",  # raised by the live churn-risk model (risk/serving.py), not by the scorecard's rules
)
EXPANSION_TYPES = ("seats_nearly_full", "usage_near_plan_limit", "promoter_response")
SIGNAL_TYPES = RISK_TYPES + EXPANSION_TYPES
