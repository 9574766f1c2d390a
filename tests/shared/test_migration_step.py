"""Migrations are a step of their own (`churnwatch migrate`); services check the schema at start and
refuse one they cannot serve, saying what to run."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable

import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import text

from services.alerts.app import create_app as alerts_app
from services.console.app import create_app as console_app
from services.ingest.app import create_app as ingest_app
from services.scoring.app import create_app as scoring_app
from services.surveys.app import create_app as surveys_app
from shared.db import alembic_config, create_engine
from shared.schema_version import (
    MIGRATE_COMMAND,
    SchemaNotCurrent,
    known_revisions,
    mismatch,
    require_current_schema,
    shipped_heads,
)
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.infra import REPO_ROOT, Infra, settings_env

APPS: dict[str, Callable[[Settings], FastAPI]] = {
    "ingest": ingest_app, "scoring": scoring_app, "alerts": alerts_app, "surveys": surveys_app,
    "console": console_app,
}


def churnwatch(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared.cli", *args], env=settings_env(settings),
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)


def test_the_verdict_names_what_is_wrong_and_what_to_run() -> None:
    heads = frozenset({"0005_alerts", "0006_scoring"})
    known = heads | {"0001", "0002", "0004_alerts"}
    assert mismatch(heads, heads, known) is None
    never = mismatch(frozenset(), heads, known)
    assert never is not None and "never migrated" in never and MIGRATE_COMMAND in never
    older = mismatch(frozenset({"0004_alerts", "0006_scoring"}), heads, known)
    assert older is not None and "older" in older and "0005_alerts" in older and MIGRATE_COMMAND in older
    newer = mismatch(frozenset({"0007_alerts", "0006_scoring"}), heads, known)
    assert newer is not None and "newer Churnwatch" in newer and "0007_alerts" in newer


def test_the_shipped_heads_are_revisions_of_the_migrations() -> None:
    heads = shipped_heads()
    assert len(heads) >= 5  # one branch per service, plus the shared ones
    assert heads <= known_revisions()


def test_churnwatch_migrate_brings_a_blank_database_to_the_heads_once(infra: Infra) -> None:
    settings = infra.unmigrated_settings()
    before = churnwatch(settings, "migrate", "--check")
    assert before.returncode == 1
    assert "never migrated" in before.stderr and MIGRATE_COMMAND in before.stderr

    first = churnwatch(settings, "migrate")
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("schema current: ")
    assert set(first.stdout.removeprefix("schema current: ").strip().split(", ")) == shipped_heads()

    again = churnwatch(settings, "migrate")  # nothing left to do, and no harm
    assert again.returncode == 0 and again.stdout == first.stdout
    assert churnwatch(settings, "migrate", "--check").returncode == 0


def test_a_service_process_refuses_an_unmigrated_database_and_exits_saying_what_to_run(infra: Infra) -> None:
    settings = infra.unmigrated_settings()
    env = settings_env(settings)
    env["CHURNWATCH_INGEST_PORT"] = "0"
    # subprocess.run kills the process if it outlives the timeout: nothing is left behind.
    ran = subprocess.run([sys.executable, "-m", "services.ingest"], env=env, cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    output = ran.stdout + ran.stderr
    assert ran.returncode == 3, output
    assert "schema_not_current" in output
    assert f"run `{MIGRATE_COMMAND}`" in output


@pytest.mark.parametrize("service", list(APPS))
async def test_every_service_refuses_an_unmigrated_database(infra: Infra, service: str) -> None:
    settings = infra.unmigrated_settings()
    with pytest.raises(SchemaNotCurrent, match=MIGRATE_COMMAND):
        async with serving(APPS[service](settings)):
            pytest.fail(f"{service} started on an unmigrated database")
    # ...and created nothing in it: the schema is the migration step's alone.
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            tables = (await conn.execute(text(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"))).scalar_one()
        assert tables == 0
    finally:
        await engine.dispose()


async def test_an_older_schema_is_refused_until_migrated(infra: Infra) -> None:
    settings = infra.unmigrated_settings()
    config = alembic_config(settings.database_url)
    await asyncio.to_thread(command.upgrade, config, "0004_alerts")
    engine = create_engine(settings)
    try:
        with pytest.raises(SchemaNotCurrent, match="older than this code") as refused:
            await require_current_schema(engine)
        assert "0005_alerts" in str(refused.value) and MIGRATE_COMMAND in str(refused.value)
        assert churnwatch(settings, "migrate").returncode == 0
        await require_current_schema(engine)
    finally:
        await engine.dispose()


async def test_a_schema_from_a_newer_version_is_refused(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await require_current_schema(engine)  # the fixtures' databases are migrated
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO alembic_version (version_num) VALUES ('0099_from_the_future')"))
        with pytest.raises(SchemaNotCurrent, match="newer Churnwatch") as refused:
            await require_current_schema(engine)
        assert "0099_from_the_future" in str(refused.value)
        with pytest.raises(SchemaNotCurrent):
            async with serving(scoring_app(settings)):
                pytest.fail("scoring started on a schema it does not know")
    finally:
        await engine.dispose()
