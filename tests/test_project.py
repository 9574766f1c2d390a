"""The project's public contract on paper: the configuration reference, topics and docker-compose."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared.settings import Settings
from shared.topics import Topics

ROOT = Path(__file__).resolve().parents[1]


def test_the_configuration_reference_documents_every_setting_with_its_default() -> None:
    readme = (ROOT / "docs" / "configuration.md").read_text()
    for name, field in Settings.model_fields.items():
        variable = f"CHURNWATCH_{name.upper()}"
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{variable}`")), None)
        assert row is not None, f"{variable} is not in docs/configuration.md's table"
        default = field.default
        if default is not None and not hasattr(default, "get_secret_value"):
            assert f"`{default}`" in row, f"{variable}: docs/configuration.md lacks default {default!r}"


def test_readme_documents_every_topic() -> None:
    readme = (ROOT / "README.md").read_text()
    for topic in Topics.from_settings(Settings()).all():
        assert f"`{topic}`" in readme, topic


def test_public_ports_are_the_contract() -> None:
    defaults = Settings()
    assert (defaults.ingest_port, defaults.scoring_port, defaults.alerts_port,
            defaults.surveys_port) == (8081, 8082, 8083, 8084)


def test_compose_runs_the_same_stack() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["prometheus"]["image"].startswith("prom/prometheus")
    known = {f"CHURNWATCH_{name.upper()}" for name in Settings.model_fields}
    for name in ("ingest", "scoring", "alerts", "surveys", "console"):
        service = services[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        port = getattr(Settings(), f"{name}_port")
        assert service["ports"] == [f"{port}:{port}"]
        environment = service["environment"]
        assert set(environment) <= known, set(environment) - known
        # A write key must be chosen by whoever deploys, never defaulted.
        assert re.fullmatch(r"\$\{CHURNWATCH_BOOTSTRAP_WRITE_KEY:\?.+\}",
                            environment["CHURNWATCH_BOOTSTRAP_WRITE_KEY"])
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = scrape["scrape_configs"][0]["static_configs"][0]["targets"]
    assert sorted(targets) == ["alerts:8083", "console:8085", "ingest:8081", "scoring:8082", "surveys:8084"]
    dockerfile = (ROOT / compose["x-churnwatch"]["build"]["dockerfile"]).read_text()
    assert "requirements.lock" in dockerfile
