"""`churnwatch migrate`: bring the database's schema to this version's migrations, as a step.

Services never migrate; each checks the schema at start and refuses an old or unknown one
(shared/schema_version.py). Run this once per upgrade, before the new services start: `make run`
does, compose's one-shot `migrate` service does, and so does the Kubernetes migration Job.
Safe to run twice or from two places at once (the migrations take an advisory lock).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from shared.db import create_engine, is_reachable, migrate
from shared.schema_version import SchemaNotCurrent, applied_revisions, require_current_schema
from shared.settings import Settings, get_settings


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="churnwatch migrate",
        description="Apply the schema migrations to the database named by CHURNWATCH_DATABASE_URL "
                    "(every branch to its newest revision). Services refuse to start until this has run.")
    root.add_argument("--check", action="store_true",
                      help="change nothing: exit 0 if the schema is current, 1 (saying why) if not")
    root.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                      help="wait up to this long for the database to accept connections first")
    return root


async def _wait_for_database(settings: Settings, seconds: float) -> bool:
    engine = create_engine(settings)
    deadline = time.monotonic() + seconds
    try:
        while not await is_reachable(engine):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(1.0)
        return True
    finally:
        await engine.dispose()


async def _run(settings: Settings, check_only: bool, wait: float) -> int:
    if wait > 0 and not await _wait_for_database(settings, wait):
        print(f"churnwatch migrate: the database did not answer within {wait:g} s", file=sys.stderr)
        return 1
    if not check_only:
        await migrate(settings)
    engine = create_engine(settings)
    try:
        await require_current_schema(engine)
        revisions = sorted(await applied_revisions(engine))
    except SchemaNotCurrent as problem:
        print(f"churnwatch migrate: {problem}", file=sys.stderr)
        return 1
    finally:
        await engine.dispose()
    print(f"schema current: {', '.join(revisions)}")
    return 0


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    args = parser().parse_args(argv)
    return asyncio.run(_run(settings or get_settings(), args.check, args.wait))
