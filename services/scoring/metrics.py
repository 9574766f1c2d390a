"""Scoring-specific metrics (the shared consumer counts events and batch latency)."""

from prometheus_client import Counter

UNATTRIBUTED_EVENTS = Counter(
    "churnwatch_scoring_unattributed_events_total",
    "Events without an account: kept on Kafka, not scored.",
    ["topic"],
)
SCORE_CHANGES = Counter(
    "churnwatch_scoring_score_changes_total",
    "Score or band changes recorded, by the new band.",
    ["band"],
)
SIGNALS_RAISED = Counter(
    "churnwatch_scoring_signals_total",
    "Risk signals published, by type.",
    ["signal_type"],
)
