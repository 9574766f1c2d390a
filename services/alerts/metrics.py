"""Alerts-specific metrics (the shared ones cover consuming, dead letters and HTTP).

Labels are bounded: signal types, severities, channels, purposes and reason words, never
account or recipient ids.
"""

from prometheus_client import Counter, Gauge, Histogram

ALERTS_CREATED = Counter(
    "churnwatch_alerts_created_total",
    "Alerts opened (a new condition for an account and signal type), by signal type and severity.",
    ["signal_type", "severity"],
)
ALERTS_SUPPRESSED = Counter(
    "churnwatch_alerts_duplicates_suppressed_total",
    "Risk signals whose dedupe key was seen before (the same occurrence again), so nobody was notified.",
    ["signal_type"],
)
ALERTS_UPDATED = Counter(
    "churnwatch_alerts_updated_total",
    "New occurrences folded into an alert already open (or reopened), by signal type and why no new "
    "ping went out (already_open, snoozed, cooldown, stale) or severity_rose when one did.",
    ["signal_type", "reason"],
)
ALERTS_IGNORED = Counter(
    "churnwatch_alerts_signals_ignored_total",
    "Signals recorded but not acted on, by reason (stale, no_open_alert, stale_clear).",
    ["signal_type", "reason"],
)
ALERTS_UNROUTABLE = Counter(
    "churnwatch_alerts_unroutable_total",
    "Alerts recorded with no recipient on any channel (no Slack, no CSM or fallback email).",
)
ALERTS_LIFECYCLE = Counter(
    "churnwatch_alerts_lifecycle_total",
    "Lifecycle transitions by action (acknowledged, snoozed, snooze_ended, resolved, reopened, "
    "escalated) and by what caused them (api, link, signal, clock).",
    ["signal_type", "action", "via"],
)
ALERTS_FEEDBACK = Counter(
    "churnwatch_alerts_feedback_total",
    "Feedback verdicts recorded (a person changing their verdict counts again), by signal type.",
    ["signal_type", "verdict"],
)
FALSE_POSITIVE_RATIO = Gauge(
    "churnwatch_alerts_false_positive_ratio",
    "Share of alerts judged 'not useful' among those given feedback, per signal type (from the "
    "database, one verdict per person per alert; refreshed on feedback and every scheduler tick).",
    ["signal_type"],
)
DIGESTS = Counter(
    "churnwatch_alerts_digests_total",
    "Daily digests queued (one per recipient per day).",
)
DIGESTS_UNROUTABLE = Counter(
    "churnwatch_alerts_digests_unroutable_total",
    "Due digests whose recipient no channel reaches any more, by resolution: fallback (sent to the "
    "routing fallback instead) or held (no fallback either: the items are kept, not dropped, and go "
    "out once a route exists; counted once per recipient and digest day by each scheduler process).",
    ["resolution"],
)
DIGEST_ITEMS_HELD = Gauge(
    "churnwatch_alerts_digest_items_held",
    "Digest items due but held back because neither their recipient nor a fallback can be reached "
    "(as of the last scheduler tick).",
)
DELIVERIES = Counter(
    "churnwatch_alerts_deliveries_total",
    "Delivery attempts by channel, outcome (sent, retry, failed, cancelled, deferred) and reason "
    "(ok, http_429, smtp_550, channel_not_found, verified_in_history, ...).",
    ["channel", "outcome", "reason"],
)
IN_DOUBT = Counter(
    "churnwatch_alerts_deliveries_in_doubt_total",
    "Attempts whose previous try may have reached the receiver unrecorded, by how it was settled: "
    "found (verified in Slack history, not resent), not_found (verified absent, sent) or resent "
    "(cannot be verified: webhook or email; sent again, marked as a possible repeat).",
    ["channel", "resolution"],
)
DELIVERY_LATENCY = Histogram(
    "churnwatch_alerts_delivery_latency_seconds",
    "From a delivery being due (its alert recorded, or its quiet hours over) to the channel accepting it.",
    ["channel"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
DELIVERY_QUEUE = Gauge(
    "churnwatch_alerts_delivery_queue_depth",
    "Deliveries not yet sent, failed or cancelled (pending, deferred or being sent), by channel.",
    ["channel"],
)
LOST_LEASES = Counter(
    "churnwatch_alerts_delivery_leases_lost_total",
    "Attempts that finished after their lease expired and another claim took the delivery over.",
    ["channel"],
)
SLACK_REQUESTS = Counter(
    "churnwatch_alerts_slack_requests_total",
    "Requests from Slack to the Slack app's endpoints (interactions, commands), by outcome: ok, or why "
    "refused (unsigned, bad_signature, stale_request, bad_timestamp, slack_app_off).",
    ["endpoint", "outcome"],
)
