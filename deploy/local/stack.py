"""`make run`: Kafka, PostgreSQL, the migration step and the five services on this machine, in the foreground.

Infrastructure data lives in the cache directory (outside the repository) and survives
restarts; Ctrl-C (or SIGTERM) stops the services gracefully, then the broker and the
database, every process by its pid.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from deploy.local.kafka import KafkaBroker
from deploy.local.postgres import LocalPostgres
from deploy.local.processes import cache_dir, stop_pid
from shared.settings import Settings
from shared.topics import ensure_topics

SERVICES = ("ingest", "scoring", "alerts", "surveys", "console")
DEV_WRITE_KEY = "cw_dev_local_write_key"
# An admin API token for local use only (reads of every API, overrides, the console's service token).
DEV_API_TOKEN = "cwt_dev_local_api_token"
DEV_SURVEY_LINK_SECRET = "cw_dev_local_survey_link_secret"
COLOURS = {"ingest": 36, "scoring": 35, "alerts": 33, "surveys": 32, "console": 31, "stack": 1, "sinks": 34,
           "migrate": 1}
DEV_SLACK_PORT = 8090
DEV_SMTP_PORT = 8025


def say(who: str, line: str) -> None:
    colour = COLOURS.get(who.split("-")[0], 0)  # scoring-2 is coloured as scoring
    prefix = f"\033[{colour}m{who:>8}\033[0m" if sys.stdout.isatty() else f"{who:>8}"
    print(f"{prefix} | {line}", flush=True)


def _pipe_to_terminal(who: str, stream: IO[bytes]) -> None:
    for raw in iter(stream.readline, b""):
        say(who, raw.decode(errors="replace").rstrip())


@dataclass
class LocalStack:
    root: Path = field(default_factory=lambda: cache_dir() / "local")
    kafka_port: int = 9092
    postgres_port: int = 5432
    # More than one: as many scoring consumers in one group, each with its own HTTP port
    # (scoring_ports), splitting the partitions between them.
    scoring_processes: int = 1

    def __post_init__(self) -> None:
        self.kafka = KafkaBroker(self.root / "kafka", port=self.kafka_port,
                                 controller_port=self.kafka_port + 1)
        self.postgres = LocalPostgres(self.root / "postgres", port=self.postgres_port)
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.setdefault("CHURNWATCH_KAFKA_BOOTSTRAP_SERVERS", self.kafka.bootstrap_servers)
        env.setdefault("CHURNWATCH_DATABASE_URL", self.postgres.url)
        env.setdefault("CHURNWATCH_BOOTSTRAP_WRITE_KEY", DEV_WRITE_KEY)
        env.setdefault("CHURNWATCH_BOOTSTRAP_API_TOKEN", DEV_API_TOKEN)
        # The console reads scoring and alerts where this stack runs them.
        for service in ("scoring", "alerts"):
            default = str(Settings.model_fields[f"{service}_port"].default)
            port = env.get(f"CHURNWATCH_{service.upper()}_PORT", default)
            env.setdefault(f"CHURNWATCH_CONSOLE_{service.upper()}_URL", f"http://127.0.0.1:{port}")
        # Survey invitations need a link secret; locally a fixed one, so links survive restarts.
        env.setdefault("CHURNWATCH_SURVEY_LINK_SECRET", DEV_SURVEY_LINK_SECRET)
        if self.use_dev_sinks:
            env["CHURNWATCH_SLACK_WEBHOOK_URL"] = f"http://127.0.0.1:{DEV_SLACK_PORT}/services/dev"
            env["CHURNWATCH_SMTP_HOST"] = "127.0.0.1"
            env["CHURNWATCH_SMTP_PORT"] = str(DEV_SMTP_PORT)
            env.setdefault("CHURNWATCH_ALERT_DEFAULT_EMAIL", "cs-team@example.com")
            if os.environ.get("CHURNWATCH_DEV_SLACK_APP"):
                # The Slack app against the local Web API: edits in place and threads, printed.
                env["CHURNWATCH_SLACK_BOT_TOKEN"] = "xoxb-local-dev"
                env["CHURNWATCH_SLACK_API_BASE_URL"] = f"http://127.0.0.1:{DEV_SLACK_PORT}/api/"
                env.setdefault("CHURNWATCH_SLACK_SIGNING_SECRET", "local-dev-signing-secret")
        return env

    @property
    def use_dev_sinks(self) -> bool:
        """Without a real Slack webhook or mail server configured, alerts go to local stand-ins."""
        return not os.environ.get("CHURNWATCH_SLACK_WEBHOOK_URL") and not os.environ.get(
            "CHURNWATCH_SMTP_HOST")

    def start_infrastructure(self) -> None:
        say("stack", f"Kafka on {self.kafka.bootstrap_servers} (data in {self.kafka.data_dir})")
        self.kafka.start()
        say("stack", f"PostgreSQL on 127.0.0.1:{self.postgres_port} (data in {self.postgres.data_dir})")
        self.postgres.start()
        env = self.environment()
        # The migration step, as operators run it: `churnwatch migrate`, before any service starts.
        say("stack", "churnwatch migrate")
        migrated = subprocess.run([sys.executable, "-m", "shared.cli", "migrate"], env=env,
                                  capture_output=True, text=True, check=False)
        for line in (migrated.stdout + migrated.stderr).splitlines():
            say("migrate", line)
        if migrated.returncode != 0:
            raise RuntimeError("churnwatch migrate failed")
        settings = Settings(
            kafka_bootstrap_servers=env["CHURNWATCH_KAFKA_BOOTSTRAP_SERVERS"],
            database_url=env["CHURNWATCH_DATABASE_URL"],
        )
        asyncio.run(ensure_topics(settings))
        say("stack", "topics ready")

    def scoring_ports(self, env: dict[str, str]) -> list[int]:
        """The first scoring process on the scoring port, each further one 100 ports above the last."""
        first = int(env.get("CHURNWATCH_SCORING_PORT", str(Settings.model_fields["scoring_port"].default)))
        return [first + 100 * i for i in range(self.scoring_processes)]

    def start_services(self) -> None:
        env = self.environment()
        commands = {service: [sys.executable, "-m", f"services.{service}"] for service in SERVICES}
        extra_env: dict[str, dict[str, str]] = {}
        for i, port in enumerate(self.scoring_ports(env)[1:], start=2):
            commands[f"scoring-{i}"] = commands["scoring"]
            extra_env[f"scoring-{i}"] = {"CHURNWATCH_SCORING_PORT": str(port)}
        if self.use_dev_sinks:
            commands["sinks"] = [sys.executable, "-m", "deploy.local.sinks",
                                 "--slack-port", str(DEV_SLACK_PORT),
                                 "--smtp-port", str(DEV_SMTP_PORT)]
        for service, command in commands.items():
            process = subprocess.Popen(
                command,
                env=env | extra_env.get(service, {}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
            assert process.stdout is not None
            threading.Thread(target=_pipe_to_terminal, args=(service, process.stdout),
                             daemon=True).start()
            self.processes[service] = process

    def stop(self) -> None:
        for service, process in self.processes.items():
            if process.poll() is None:
                say("stack", f"stopping {service} (pid {process.pid})")
                stop_pid(process.pid, signal.SIGTERM, timeout=40)
                process.wait()
        say("stack", "stopping PostgreSQL and Kafka")
        self.postgres.stop()
        self.kafka.stop()

    def run(self) -> int:
        stop_requested = threading.Event()

        def _on_signal(signum: int, _: object) -> None:
            stop_requested.set()

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        try:
            self.start_infrastructure()
            self.start_services()
            env = self.environment()
            say("stack", "Churnwatch is starting:")
            for service in SERVICES:
                port = env.get(f"CHURNWATCH_{service.upper()}_PORT",
                               str(Settings.model_fields[f"{service}_port"].default))
                say("stack", f"  {service:<8} http://127.0.0.1:{port}   (/healthz /readyz /metrics)")
            for i, extra_port in enumerate(self.scoring_ports(env)[1:], start=2):
                say("stack", f"  scoring #{i} http://127.0.0.1:{extra_port}   (the same consumer group)")
            if env["CHURNWATCH_BOOTSTRAP_WRITE_KEY"] == DEV_WRITE_KEY:
                say("stack", f"  development write key: {DEV_WRITE_KEY}  (set "
                    "CHURNWATCH_BOOTSTRAP_WRITE_KEY for your own)")
            if env["CHURNWATCH_BOOTSTRAP_API_TOKEN"] == DEV_API_TOKEN:
                say("stack", f"  development API token (admin): {DEV_API_TOKEN}  (send it as "
                    "Authorization: Bearer; `churnwatch tokens create` for scoped ones)")
            say("stack", "  console: add a user with `churnwatch users create --email you@example.com "
                "--role lead`, then sign in")
            if self.use_dev_sinks:
                say("stack", f"  alerts go to a local Slack-like webhook (:{DEV_SLACK_PORT}) and SMTP "
                    f"server (:{DEV_SMTP_PORT}), printed here as [slack] / [email]")
            say("stack", "Ctrl-C stops everything.")
            while not stop_requested.is_set():
                exited = [s for s, p in self.processes.items() if p.poll() is not None]
                if exited:
                    say("stack", f"{', '.join(exited)} exited; stopping the rest")
                    return 1
                time.sleep(0.5)
            return 0
        finally:
            self.stop()
