"""Scoring-specific metrics (the shared consumer counts events and batch latency)."""

from prometheus_client import Counter, Gauge, Histogram

UNATTRIBUTED_EVENTS = Counter(
    "churnwatch_scoring_unattributed_events_total",
    "Events without an account: kept on Kafka, not scored.",
    ["topic"],
)
SCORE_CHANGES = Counter(
    "churnwatch_scoring_score_changes_total",
    "Recorded changes of an account's shown health (history rows), by the new band.",
    ["band"],
)
SIGNALS = Counter(
    "churnwatch_scoring_signals_total",
    "Risk and expansion signals published, by type and status (raised, cleared).",
    ["signal_type", "status"],
)
LATE_EVENTS = Counter(
    "churnwatch_scoring_late_events_total",
    "Events older than their account's settled time (beyond the lateness bound): applied best-effort.",
)
TIMERS_FIRED = Counter(
    "churnwatch_scoring_timers_fired_total",
    "Event-time timers (daily re-scoring ticks, override expiries) fired by a partition's watermark.",
)
PARTITION_LOADS = Counter(
    "churnwatch_scoring_partition_loads_total",
    "Partitions loaded from PostgreSQL into memory (on first use after an assignment, or a stale copy).",
)
ACCOUNTS_IN_MEMORY = Gauge(
    "churnwatch_scoring_accounts_in_memory",
    "Accounts of the owned partitions held in this process.",
)
MODEL_VERSION = Gauge(
    "churnwatch_scoring_model_version",
    "The churn-risk model version live scoring serves with; 0 while the scorecard serves.",
)
MODEL_REFUSED = Counter(
    "churnwatch_scoring_model_refused_total",
    "Activated model versions refused at load (another feature schema, bytes not as recorded).",
    ["version"],
)
MODEL_SCORES = Counter(
    "churnwatch_scoring_model_scores_total",
    "Account moments scored by the live churn-risk model (daily ticks of event time).",
)
MODEL_SECONDS = Histogram(
    "churnwatch_scoring_model_batch_seconds",
    "Time a batch spends evaluating the live model (one predict_proba across its accounts, explanations).",
)
