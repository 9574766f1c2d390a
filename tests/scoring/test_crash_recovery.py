"""A hard kill of scoring mid-stream loses nothing and counts nothing twice.

The same events go to two fresh topic sets and databases. One scoring process reads the
first without interruption; the second is SIGKILLed part-way through the other, restarted,
and must end with exactly the same account state, scores and history.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from deploy.local.processes import free_port
from services.scoring.store import account_health, score_changes
from shared.db import create_engine
from shared.events import Envelope
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.scoring.events import T0, daily_usage, group, nps, ticket
from tests.support.infra import Infra
from tests.support.processes import ServiceProcess

ACCOUNTS = 12


def workload() -> list[Envelope]:
    events: list[Envelope] = []
    for n in range(ACCOUNTS):
        account = f"acct-{n}"
        events.append(group(f"g-{n}", account, f"Account {n}"))
        events += daily_usage(account, days=40, per_day=6 - n % 5)
        events += [ticket(f"t-{n}-{k}", account, f"T-{n}-{k}", "open", T0 + timedelta(days=20 + k))
                   for k in range(n % 4)]
        events.append(nps(f"n-{n}", account, f"r-{n}", n % 11, T0 + timedelta(days=30)))
    return events


async def publish(settings: Settings, events: list[Envelope]) -> None:
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    try:
        for start in range(0, len(events), 500):
            await publisher.publish(events[start:start + 500])
    finally:
        await publisher.stop()


async def applied(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            exists = (await conn.execute(text("SELECT to_regclass('account_health')"))).scalar()
            if exists is None:
                return 0
            total = (await conn.execute(select(func.sum(account_health.c.events_applied)))).scalar()
            return int(total or 0)
    finally:
        await engine.dispose()


async def snapshot(settings: Settings) -> tuple[list[Any], list[Any]]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(
                select(account_health.c.account_id, account_health.c.state, account_health.c.score,
                       account_health.c.band, account_health.c.factors,
                       account_health.c.events_applied).order_by(account_health.c.account_id)
            )).all()
            history = (await conn.execute(
                select(score_changes.c.account_id, score_changes.c.event_id,
                       score_changes.c.previous_score, score_changes.c.score, score_changes.c.band)
                .order_by(score_changes.c.id)
            )).all()
            return [tuple(r) for r in rows], [tuple(h) for h in history]
    finally:
        await engine.dispose()


async def wait_for_applied(settings: Settings, at_least: int, timeout: float = 90.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await applied(settings)
        if done >= at_least:
            return done
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {await applied(settings)} of {at_least} events applied")


async def test_kill_mid_stream_then_restart_matches_an_uninterrupted_run(
    infra: Infra, tmp_path: Path
) -> None:
    events = workload()
    total = len(events)
    # Small batches: many commits, so the kill lands between and inside them.
    steady = infra.fresh_settings(consumer_max_batch=50)
    crashing = infra.fresh_settings(consumer_max_batch=50)
    await publish(steady, events)
    await publish(crashing, events)

    uninterrupted = ServiceProcess("scoring", steady, free_port(), tmp_path).start()
    try:
        await wait_for_applied(steady, total)
    finally:
        uninterrupted.stop()

    victim = ServiceProcess("scoring", crashing, free_port(), tmp_path).start()
    try:
        reached = await wait_for_applied(crashing, total // 3)
        victim.kill()
        assert reached < total, "the kill must land mid-stream"
        restarted = ServiceProcess("scoring", crashing, free_port(), tmp_path).start()
        try:
            await wait_for_applied(crashing, total)
            await asyncio.sleep(1)  # anything counted twice would show up now
        finally:
            restarted.stop()
    finally:
        victim.stop()

    expected, crashed = await snapshot(steady), await snapshot(crashing)
    assert len(expected[0]) == ACCOUNTS
    assert crashed[0] == expected[0]
    # No event caused two recorded changes: nothing was counted twice.
    caused_by = [(account, event_id) for account, event_id, *_ in crashed[1]]
    assert len(caused_by) == len(set(caused_by))
    # The intermediate history may differ: an account's usage, tickets and surveys arrive on
    # different topics whose interleaving varies between runs. Each history ends at the
    # account's final score, which does not depend on that interleaving.
    last_change = {account: (score, band) for account, _, _, score, band in crashed[1]}
    assert last_change == {row[0]: (row[2], row[3]) for row in crashed[0]}
    assert sum(row[5] for row in crashed[0]) == total
