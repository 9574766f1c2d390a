"""Ingest-specific metrics (the shared ones cover requests and produce latency)."""

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter

from shared.http import ApiError

EVENTS_ACCEPTED = Counter(
    "churnwatch_ingest_events_accepted_total",
    "Events acknowledged to a client, by event type and write-key source.",
    ["type", "source"],
)
UNATTRIBUTED_EVENTS = Counter(
    "churnwatch_ingest_unattributed_events_total",
    "Accepted events that name no account and whose user has no group call yet (kept, not dropped).",
    ["type"],
)
DUPLICATES_DROPPED = Counter(
    "churnwatch_ingest_duplicates_dropped_total",
    "Events not published again because their id was accepted before (client retries), by type.",
    ["type"],
)
REJECTED_REQUESTS = Counter(
    "churnwatch_ingest_rejected_requests_total",
    "Requests refused before anything reached Kafka, by reason code.",
    ["reason"],
)
REQUEST_BYTES = Counter(
    "churnwatch_ingest_request_bytes_total",
    "Bytes of request bodies received (after gzip decoding).",
)


@contextmanager
def counting_rejections() -> Iterator[None]:
    """Count a client error by its code on the way out (the error still answers the request)."""
    try:
        yield
    except ApiError as exc:
        REJECTED_REQUESTS.labels(exc.code).inc()
        raise
MESSAGE_ID_PRUNES = Counter(
    "churnwatch_ingest_message_id_prunes_total",
    "Background passes forgetting message ids older than the retention, by outcome (ok, failed).",
    ["outcome"],
)
