"""What a running stack shows its operators, on real Kafka and PostgreSQL: every service's ops
endpoints, request ids, the metrics the Grafana dashboard and the Prometheus rules read.

One stack for the module (the four services, the console and the Slack/SMTP stand-ins), fed once
with a little of everything: product events, a refused request, a detractor whose alert goes out
on Slack and email and gets feedback, and a message no consumer can decode (a dead letter).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.processes import free_port
from shared.publisher import EventPublisher, RawMessage
from shared.topics import Topics
from tests.e2e.test_pipeline import ACCOUNT, KEY, post_detractor, send_product_events, wait_for_health
from tests.observability.promql import PROMETHEUS_OWN, exposed_names, names_in
from tests.observability.sources import dashboard_expressions, rule_expressions
from tests.support.infra import API_AUTH, Infra
from tests.support.processes import ServiceProcess
from tests.support.stack import Stack, running_stack
from tests.support.waiting import eventually

# Failure counters a healthy run never increments: declared by the services (so a panel or rule
# on them is right), but without a sample until a batch fails or a consumer stops.
ONLY_ON_FAILURE = {"churnwatch_batch_failures_total", "churnwatch_dead_letter_limit_stops_total"}


@pytest.fixture(scope="module")
def fed_stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Base URL by service, once the traffic has been processed everywhere."""
    directory = tmp_path_factory.mktemp("observability")
    with running_stack(infra, directory) as stack:
        console = ServiceProcess("console", stack.settings, free_port(), directory)
        try:
            console.start()
            feed(stack)
            yield {**{name: stack.url(name) for name in stack.services}, "console": console.base_url}
        finally:
            console.stop()


def scrape(url: str) -> str:
    response = httpx.get(f"{url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    return response.text


def sample_exists(url: str, name: str, **labels: str) -> bool:
    return any(sample.name == name and labels.items() <= sample.labels.items()
               for family in text_string_to_metric_families(scrape(url)) for sample in family.samples)


def feed(stack: Stack) -> None:
    send_product_events(stack)
    refused = httpx.post(f"{stack.url('ingest')}/v1/batch", auth=(KEY, ""), content=b"{not json",
                         headers={"Content-Type": "application/json"})
    assert refused.status_code == 400, refused.text
    wait_for_health(stack, lambda h: h["events_applied"] >= 4)
    post_detractor(stack)
    assert len(stack.sinks.wait_for("slack", 1)) == 1
    assert len(stack.sinks.wait_for("email", 1)) == 1

    alerts = httpx.get(f"{stack.url('alerts')}/v1/accounts/{ACCOUNT}/alerts", headers=API_AUTH).json()
    [alert] = alerts["alerts"]
    judged = httpx.post(f"{stack.url('alerts')}/v1/alerts/{alert['id']}/feedback", headers=API_AUTH,
                        json={"actor": "jane.csm@example.com", "useful": True})
    assert judged.status_code == 200, judged.text

    async def poison() -> None:
        publisher = EventPublisher(stack.settings, "test")
        try:
            garbage = RawMessage(key=ACCOUNT.encode(), value=b"not an envelope", headers=[])
            await publisher.publish_raw(Topics.from_settings(stack.settings).usage, [garbage])
        finally:
            await publisher.stop()

    asyncio.run(poison())
    asyncio.run(eventually(
        lambda: sample_exists(stack.url("scoring"), "churnwatch_dead_letters_total", service="scoring"),
        "scoring dead-lettered the undecodable message", within=60.0))
    for service in ("scoring", "alerts", "surveys"):
        asyncio.run(eventually(
            lambda service=service: sample_exists(
                stack.url(service), "churnwatch_event_time_freshness_seconds", service=service),
            f"{service}'s consumer processed an event", within=60.0))


def exposed(urls: dict[str, str]) -> tuple[set[str], set[str]]:
    declared: set[str] = set()
    sampled: set[str] = set()
    for url in urls.values():
        names, with_samples = exposed_names(scrape(url))
        declared |= names
        sampled |= with_samples
    return declared, sampled


def test_the_dashboard_queries_only_metrics_the_services_expose(fed_stack: dict[str, str]) -> None:
    declared, sampled = exposed(fed_stack)
    wanted = names_in(dashboard_expressions()) - PROMETHEUS_OWN
    assert wanted - declared == set(), "the dashboard reads metrics no service declares"
    # With the traffic above, every panel has data to draw.
    assert wanted - sampled - ONLY_ON_FAILURE == set(), "panels without a series after real traffic"


def test_the_alerting_rules_read_only_metrics_the_services_expose(fed_stack: dict[str, str]) -> None:
    declared, _ = exposed(fed_stack)
    wanted = names_in(rule_expressions()) - PROMETHEUS_OWN
    assert wanted
    assert wanted - declared == set(), "rules on metrics no service declares"


def test_consumers_report_lag_and_freshness_under_their_service(fed_stack: dict[str, str]) -> None:
    for service in ("scoring", "alerts", "surveys"):
        families = {f.name: f for f in text_string_to_metric_families(scrape(fed_stack[service]))}
        lag = families["churnwatch_consumer_lag"].samples
        assert lag and {s.labels["service"] for s in lag} == {service}, lag
        [freshness] = families["churnwatch_event_time_freshness_seconds"].samples
        assert freshness.labels == {"service": service, "group": f"churnwatch-{service}"}
        # Events of the last few days (the product events are backdated up to 3 days).
        assert 0 < freshness.value < 4 * 86_400, freshness


def test_every_service_answers_health_readiness_and_metrics(fed_stack: dict[str, str]) -> None:
    for name, url in fed_stack.items():
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, (name, ready.text)
        families = {f.name: f for f in text_string_to_metric_families(scrape(url))}
        assert "churnwatch_http_requests" in families, name
        [build] = families["churnwatch_build_info"].samples
        assert build.value == 1 and build.labels["service"] == name
        assert build.labels["version"] and build.labels["python_version"].startswith("3.")
        up = {s.labels["dependency"]: s.value for s in families["churnwatch_dependency_up"].samples}
        assert up == ({"database": 1.0} if name == "console" else {"database": 1.0, "kafka": 1.0}), name


def test_every_service_echoes_a_request_id_or_makes_one(fed_stack: dict[str, str]) -> None:
    for name, url in fed_stack.items():
        kept = httpx.get(f"{url}/healthz", headers={"X-Request-ID": f"probe-{name}-1"})
        assert kept.headers["X-Request-ID"] == f"probe-{name}-1", name
        made = httpx.get(f"{url}/no-such-route", headers={"X-Request-ID": "has a space"})
        assert made.status_code == 404
        assert made.headers["X-Request-ID"] not in {"", "has a space"}, name
