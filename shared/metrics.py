"""Prometheus metrics every service exposes, all under the `churnwatch_` prefix.

Labels never carry account or user ids: cardinality stays bounded by routes, topics,
channels and reasons. Service-specific metrics live with their service.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "churnwatch_http_requests_total",
    "HTTP requests answered, by route template and status code.",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "churnwatch_http_request_duration_seconds",
    "Time to answer an HTTP request.",
    ["service", "route"],
)
EVENTS_PRODUCED = Counter(
    "churnwatch_events_produced_total",
    "Events acknowledged by Kafka, by topic.",
    ["service", "topic"],
)
PRODUCE_FAILURES = Counter(
    "churnwatch_produce_failures_total",
    "Publish attempts that Kafka did not acknowledge in time, by reason.",
    ["service", "reason"],
)
PRODUCE_LATENCY = Histogram(
    "churnwatch_produce_duration_seconds",
    "Time from handing a group of events to the producer to Kafka acknowledging all of them.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
PRODUCE_IN_FLIGHT = Gauge(
    "churnwatch_produce_in_flight_events",
    "Events handed to the producer and not yet acknowledged by Kafka.",
    ["service"],
)
EVENTS_CONSUMED = Counter(
    "churnwatch_events_consumed_total",
    "Events read from Kafka and processed, by topic and outcome (processed, duplicate, dead_lettered).",
    ["service", "topic", "outcome"],
)
BATCH_PROCESSING = Histogram(
    "churnwatch_batch_processing_seconds",
    "Time to process one consumed batch, from decode to durable commit.",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
BATCH_FAILURES = Counter(
    "churnwatch_batch_failures_total",
    "Consumed batches that failed and were retried, by error type.",
    ["service", "error"],
)
CONSUMER_LAG = Gauge(
    "churnwatch_consumer_lag",
    "Messages between the consumer's position and the partition's high watermark.",
    ["group", "topic", "partition"],
)
DEAD_LETTERS = Counter(
    "churnwatch_dead_letters_total",
    "Events sent to the dead-letter topic, by source topic.",
    ["service", "topic"],
)
POISON_ISOLATIONS = Counter(
    "churnwatch_poison_isolations_total",
    "Failed batches retried in pieces to find the events that make them fail, by outcome "
    "(isolated: culprits dead-lettered, the rest committed; no_culprit: every piece committed).",
    ["service", "outcome"],
)
DEAD_LETTER_LIMIT_STOPS = Counter(
    "churnwatch_dead_letter_limit_stops_total",
    "Consumers stopped because a partition passed the dead-letter limit, by limit "
    "(ratio, consecutive).",
    ["service", "group", "limit"],
)
ERRORS = Counter(
    "churnwatch_errors_total",
    "Unexpected errors, by kind.",
    ["service", "kind"],
)
