"""Alerts-specific metrics (the shared ones cover consuming, dead letters and HTTP)."""

from prometheus_client import Counter, Gauge, Histogram

ALERTS_CREATED = Counter(
    "churnwatch_alerts_created_total",
    "Alerts recorded for a new dedupe key, by signal type and severity.",
    ["signal_type", "severity"],
)
ALERTS_SUPPRESSED = Counter(
    "churnwatch_alerts_duplicates_suppressed_total",
    "Risk signals whose dedupe key already had an alert, so nobody was notified again.",
    ["signal_type"],
)
ALERTS_UNROUTABLE = Counter(
    "churnwatch_alerts_unroutable_total",
    "Alerts recorded with no recipient on any channel (no Slack webhook, no CSM or default email).",
)
DELIVERIES = Counter(
    "churnwatch_alerts_deliveries_total",
    "Delivery attempts by channel, outcome (sent, retry, failed) and reason (ok, http_429, smtp_550, ...).",
    ["channel", "outcome", "reason"],
)
DELIVERY_LATENCY = Histogram(
    "churnwatch_alerts_delivery_latency_seconds",
    "From the alert being recorded to the channel accepting it, retries included.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
DELIVERY_QUEUE = Gauge(
    "churnwatch_alerts_delivery_queue_depth",
    "Deliveries not yet sent or failed (pending, or being sent), by channel.",
    ["channel"],
)
LOST_LEASES = Counter(
    "churnwatch_alerts_delivery_leases_lost_total",
    "Attempts that finished after their lease expired and another claim took the delivery over.",
    ["channel"],
)
