"""Real Kafka and PostgreSQL for the test session, stopped by pid when the session ends."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.local.kafka import KafkaBroker
from deploy.local.postgres import LocalPostgres
from deploy.local.processes import free_port
from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]

# Seeded by every service at start (CHURNWATCH_BOOTSTRAP_API_TOKEN, scope admin): what tests read
# the protected APIs with. Tests of the scopes themselves issue their own tokens.
TEST_API_TOKEN = "cwt_test-api-token-seeded-in-every-test-database"
API_AUTH = {"Authorization": f"Bearer {TEST_API_TOKEN}"}


# Migrated once per session by the migration step itself (`churnwatch migrate`), as a deployment
# does before its services start; every test's database is a copy of it (CREATE DATABASE ...
# TEMPLATE), so a test starts on a current schema without migrating again.
MIGRATED_TEMPLATE = "churnwatch_migrated_template"


@dataclass
class Infra:
    kafka: KafkaBroker
    postgres: LocalPostgres

    def fresh_settings(self, **overrides: object) -> Settings:
        """Settings pointing at a new database, migrated (as `churnwatch migrate` leaves it), and a
        new set of topics: tests never share state."""
        return self._settings(MIGRATED_TEMPLATE, overrides)

    def unmigrated_settings(self, **overrides: object) -> Settings:
        """Like fresh_settings, on a database with no schema at all (for the migrations' own tests)."""
        return self._settings(None, overrides)

    def _settings(self, template: str | None, overrides: dict[str, object]) -> Settings:
        name = "t_" + uuid.uuid4().hex[:12]
        database_url = self.postgres.create_database(name, template)
        values: dict[str, object] = {
            "kafka_bootstrap_servers": self.kafka.bootstrap_servers,
            "database_url": database_url,
            "topic_prefix": f"{name}.",
            "consumer_group_prefix": f"{name}.",
            "topic_partitions": 3,
            "bootstrap_write_key": "test-write-key",
            "bootstrap_api_token": TEST_API_TOKEN,
            "log_level": "WARNING",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as CHURNWATCH_* variables, for a service run as a subprocess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    for key, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"CHURNWATCH_{key.upper()}"] = str(value)
    return env


def migrate_template(postgres: LocalPostgres) -> None:
    """Run the migration step, `churnwatch migrate`, as a process on the template database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHURNWATCH_")}
    env["CHURNWATCH_DATABASE_URL"] = postgres.create_database(MIGRATED_TEMPLATE)
    done = subprocess.run([sys.executable, "-m", "shared.cli", "migrate"], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"churnwatch migrate failed:\n{done.stdout}{done.stderr}")


@contextmanager
def running_infra() -> Iterator[Infra]:
    root = Path(tempfile.mkdtemp(prefix="churnwatch-test-"))
    kafka = KafkaBroker(root / "kafka", port=free_port(), controller_port=free_port())
    postgres = LocalPostgres(root / "postgres", port=free_port(), database="churnwatch")
    try:
        kafka.start()
        postgres.start()
        migrate_template(postgres)
        yield Infra(kafka=kafka, postgres=postgres)
    finally:
        kafka.stop()
        postgres.stop()
