"""The whole system as real processes: four services plus the local Slack/SMTP stand-ins."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.processes import free_port, port_open, stop_pid
from shared.settings import Settings
from tests.support.infra import REPO_ROOT, Infra
from tests.support.processes import ServiceProcess

SERVICES = ("ingest", "scoring", "alerts", "surveys")


@dataclass
class Sinks:
    """deploy.local.sinks in its own process; what it received is read from its record file."""

    record: Path
    slack_port: int
    smtp_port: int
    process: subprocess.Popen[bytes]

    @property
    def slack_url(self) -> str:
        return f"http://127.0.0.1:{self.slack_port}/services/T000/B000/test"

    def received(self, kind: str) -> list[dict[str, Any]]:
        if not self.record.exists():
            return []
        entries = [json.loads(line) for line in self.record.read_text().splitlines() if line]
        return [e for e in entries if e["kind"] == kind]

    def wait_for(self, kind: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.received(kind)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        return self.received(kind)


@contextmanager
def running_sinks(directory: Path) -> Iterator[Sinks]:
    slack_port, smtp_port = free_port(), free_port()
    record = directory / "sinks.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "deploy.local.sinks", "--slack-port", str(slack_port),
         "--smtp-port", str(smtp_port), "--record", str(record)],
        cwd=REPO_ROOT, stdout=open(directory / "sinks.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    try:
        deadline = time.monotonic() + 20
        while not (port_open("127.0.0.1", slack_port) and port_open("127.0.0.1", smtp_port)):
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError((directory / "sinks.log").read_text())
            time.sleep(0.1)
        yield Sinks(record, slack_port, smtp_port, process)
    finally:
        stop_pid(process.pid, signal.SIGTERM, timeout=10)
        process.wait()


@dataclass
class Stack:
    settings: Settings
    sinks: Sinks
    services: dict[str, ServiceProcess]

    def url(self, service: str) -> str:
        return self.services[service].base_url

    def crash_and_restart(self, service: str) -> ServiceProcess:
        """kill -9, then a new process of the service on the same port (its links stay valid)."""
        crashed = self.services[service]
        crashed.kill()
        restarted = ServiceProcess(service, self.settings, crashed.port, crashed.log_path.parent)
        self.services[service] = restarted
        return restarted.start()

    def answered(self, service: str, route: str, status: int) -> float:
        """How many requests to `route` the service has answered with `status` (its /metrics)."""
        text = httpx.get(f"{self.url(service)}/metrics", timeout=5).text
        return sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == "churnwatch_http_requests" for sample in family.samples
                   if sample.name.endswith("_total") and sample.labels.get("route") == route
                   and sample.labels.get("status") == str(status))

    def not_ready(self) -> dict[str, str]:
        """The services not alive and ready (`/readyz` 200), with what they answered."""
        trouble: dict[str, str] = {}
        for name, service in self.services.items():
            if service.process is None or service.process.poll() is not None:
                trouble[name] = "exited"
                continue
            try:
                response = httpx.get(f"{service.base_url}/readyz", timeout=5)
            except httpx.HTTPError as exc:
                trouble[name] = repr(exc)
                continue
            if response.status_code != 200:
                trouble[name] = f"{response.status_code} {response.text}"
        return trouble


@contextmanager
def running_stack(infra: Infra, directory: Path, **overrides: object) -> Iterator[Stack]:
    """`overrides`: more settings for every service (webhook secrets, mappings, ...)."""
    with running_sinks(directory) as sinks:
        ports = {name: free_port() for name in SERVICES}
        settings = infra.fresh_settings(**{
            "slack_webhook_url": sinks.slack_url,
            "smtp_host": "127.0.0.1",
            "smtp_port": sinks.smtp_port,
            "delivery_poll_seconds": 0.2,
            "log_level": "INFO",
            # Survey invitation links must point at this surveys process.
            "surveys_public_url": f"http://127.0.0.1:{ports['surveys']}",
            **overrides,
        })
        processes = {name: ServiceProcess(name, settings, ports[name], directory) for name in SERVICES}
        try:
            for process in processes.values():
                process.start()
            yield Stack(settings, sinks, processes)
        finally:
            for process in processes.values():
                process.stop()
