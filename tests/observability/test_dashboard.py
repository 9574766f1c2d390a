"""The Grafana dashboard and its provisioning: the panels the issue asks for, every query on the
provisioned Prometheus data source, and the provider reading the folder the dashboard is mounted in.
(That every metric it names exists is tests/observability/test_exposed_metrics.py, on a running stack.)"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.observability.promql import metric_names
from tests.observability.sources import DASHBOARD, dashboard_expressions, panels
from tests.support.processes import REPO_ROOT

PROVISIONING = REPO_ROOT / "deploy" / "grafana" / "provisioning"


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def queried_metrics(title: str) -> set[str]:
    [panel] = [p for p in panels(dashboard()) if p["title"] == title]
    return {name for target in panel["targets"] for name in metric_names(target["expr"])}


def test_the_panels_cover_ingest_consumers_and_alerts() -> None:
    assert "churnwatch_ingest_events_accepted_total" in queried_metrics("Events accepted")
    assert {"churnwatch_ingest_rejected_requests_total", "churnwatch_http_requests_total"} <= \
        queried_metrics("Ingest errors")
    assert queried_metrics("Consumer lag") == {"churnwatch_consumer_lag"}
    assert queried_metrics("Event-time freshness") == {"churnwatch_event_time_freshness_seconds"}
    assert queried_metrics("Batch processing latency") == {"churnwatch_batch_processing_seconds_bucket"}
    assert "churnwatch_dead_letters_total" in queried_metrics("Dead letters")
    assert queried_metrics("Deliveries by channel") == {"churnwatch_alerts_deliveries_total"}
    assert "churnwatch_alerts_deliveries_total" in queried_metrics("Delivery failures")
    assert queried_metrics("Alert volume") == {"churnwatch_alerts_created_total"}
    assert queried_metrics("Alert precision") == {"churnwatch_alerts_false_positive_ratio"}


def test_consumer_panels_are_per_service() -> None:
    for title in ("Consumer lag", "Event-time freshness", "Batch processing latency"):
        [panel] = [p for p in panels(dashboard()) if p["title"] == title]
        assert all("by (service" in target["expr"] for target in panel["targets"]), title


def test_every_panel_queries_the_provisioned_data_source() -> None:
    [source] = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus"
    ids = [p["id"] for p in panels(dashboard())]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard()):
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": source["uid"]}, panel["title"]
        assert all(t["datasource"]["uid"] == source["uid"] and t["expr"] for t in panel["targets"])
        assert panel["description"], panel["title"]


def test_the_provider_loads_the_mounted_dashboards_folder() -> None:
    [provider] = yaml.safe_load((PROVISIONING / "dashboards" / "churnwatch.yml").read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"
    assert dashboard()["uid"] == "churnwatch-overview"


def test_every_expression_names_a_metric() -> None:
    assert all(metric_names(expression) for expression in dashboard_expressions())
