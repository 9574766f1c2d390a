"""Prometheus metrics every service exposes, all under the `churnwatch_` prefix.

Labels never carry account or user ids: cardinality stays bounded by routes, topics,
channels and reasons. Service-specific metrics live with their service.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
    "Messages between the consumer's position and the partition's high watermark (as of its last batch).",
    ["service", "group", "topic", "partition"],
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
DEPENDENCY_UP = Gauge(
    "churnwatch_dependency_up",
    "Whether a dependency answered this service's readiness check (1) or not (0), by dependency "
    "(database, kafka); checked on every scrape and every /readyz.",
    ["service", "dependency"],
)
BUILD_INFO = Info(
    "churnwatch_build",
    "The running code: churnwatch's package version and the Python version (value always 1).",
    ["service"],
)


def record_build_info(service: str) -> None:
    try:
        churnwatch_version = version("churnwatch")
    except PackageNotFoundError:  # run from a checkout that was never installed
        churnwatch_version = "unknown"
    BUILD_INFO.labels(service).info({"version": churnwatch_version,
                                     "python_version": platform.python_version()})


class EventTimeFreshness(Collector):
    """`churnwatch_event_time_freshness_seconds`: wall clock minus the event time of the newest
    event each consumer has processed, computed when scraped. Set only on processing, a gauge
    would freeze at its last value while a consumer is stuck; this one keeps growing."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()  # scrapes may come from another thread (prometheus_client's server)

    def processed(self, service: str, group: str, newest_event_time: float) -> None:
        key = (service, group)
        with self._lock:
            if newest_event_time > self._newest.get(key, float("-inf")):
                self._newest[key] = newest_event_time

    def forget(self, service: str, group: str) -> None:
        """The consumer owns no partition any more: whatever it read last says nothing now."""
        with self._lock:
            self._newest.pop((service, group), None)

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "churnwatch_event_time_freshness_seconds",
            "Wall clock minus the event time of the newest event a consumer processed (scores, "
            "alerts or surveys are this far behind reality), by service and consumer group. Only "
            "consumers that processed an event since the process started are shown.",
            labels=["service", "group"],
        )
        now = time.time()
        with self._lock:
            newest = dict(self._newest)
        for (service, group), at in sorted(newest.items()):
            family.add_metric([service, group], now - at)
        yield family


EVENT_TIME_FRESHNESS = EventTimeFreshness()
REGISTRY.register(EVENT_TIME_FRESHNESS)
