"""Help-desk webhook metrics (the ingest ones cover accepted and rejected requests)."""

from prometheus_client import Counter

UNMAPPED_TICKETS = Counter(
    "churnwatch_ingest_unmapped_tickets_total",
    "Help-desk tickets published without an account because no explicit mapping matched, by source.",
    ["source"],
)
IGNORED_WEBHOOKS = Counter(
    "churnwatch_ingest_ignored_webhooks_total",
    "Signed help-desk deliveries acknowledged but not ticket events (pings, other topics), by source.",
    ["source"],
)
