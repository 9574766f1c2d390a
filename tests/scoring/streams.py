"""A multi-topic workload for scoring processes, and snapshots of what they made durable."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import func, select, text

from services.scoring.config import load_scorecard
from services.scoring.consumer import Scorer
from services.scoring.scorecard import health
from services.scoring.store import account_health, score_changes
from shared.db import create_engine
from shared.events import Envelope
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.scoring.events import T0, daily_usage, group, nps, ticket, traits
from tests.support.kafka import read_topic

ACCOUNTS = 12


def workload() -> list[Envelope]:
    """Forty days of a dozen accounts on four topics, in event-time order as a live system sends them."""
    events: list[Envelope] = []
    for n in range(ACCOUNTS):
        account = f"acct-{n}"
        renewal = (T0 + timedelta(days=60 + 10 * n)).date().isoformat()
        events.append(
            group(
                f"g-{n}",
                account,
                f"Account {n}",
                seats=4 + n % 5,
                renewal_date=renewal,
                plan="enterprise" if n % 4 == 0 else "pro",
            )
        )
        events += daily_usage(account, days=40, per_day=6 - n % 5, users=3)
        events += [
            ticket(
                f"t-{n}-{k}",
                account,
                f"T-{n}-{k}",
                "open",
                T0 + timedelta(days=20 + k),
                priority="urgent" if k == 2 else "normal",
                subject="Cannot export to Gainsight",
            )
            for k in range(n % 4)
        ]
        events.append(nps(f"n-{n}", account, f"r-{n}", n % 11, T0 + timedelta(days=30)))
        if n % 3 == 0:
            events.append(traits(f"p-{n}", account, T0 + timedelta(days=33), payment_status="failed"))
    events.sort(key=lambda e: (e.occurred_at, e.event_id))
    return events


async def publish(settings: Settings, events: list[Envelope]) -> None:
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    try:
        for start in range(0, len(events), 500):
            await publisher.publish(events[start : start + 500])
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


async def wait_for_applied(settings: Settings, at_least: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = await applied(settings)
        if done >= at_least:
            return done
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {await applied(settings)} of {at_least} events applied")


async def snapshot(settings: Settings) -> dict[str, Any]:
    """Per account: the live model and open signals (decoded: the split between settled and
    pending entries may differ), score, band, factors, counts; the history; the signal keys."""
    scorer = Scorer(load_scorecard(settings.scoring_scorecard_path), settings.scoring_lateness_seconds)
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            rows = (
                (await conn.execute(select(account_health).order_by(account_health.c.account_id)))
                .mappings()
                .all()
            )
            history = (
                await conn.execute(
                    select(
                        score_changes.c.account_id,
                        score_changes.c.event_id,
                        score_changes.c.score,
                        score_changes.c.band,
                    ).order_by(score_changes.c.id)
                )
            ).all()
    finally:
        await engine.dispose()
    accounts = {}
    for row in rows:
        state = scorer.decode(row["account_id"], bytes(row["state"]))
        accounts[row["account_id"]] = {
            "model": orjson.dumps([state.live.encode(), state.emitted], option=orjson.OPT_SORT_KEYS),
            "score": row["score"],
            "band": row["band"],
            "factors": health(state.live, scorer.card),
            "signals": row["signals"],
            "events_applied": row["events_applied"],
            "late": row["late_events"],
        }
    signals = await read_topic(settings, Topics.from_settings(settings).risk_signals)
    # What a consumer of the topic (alerts) ends up believing is open, per account and type.
    open_keys: dict[tuple[str, str], set[str]] = {}
    for signal in signals:
        key, kind = signal.payload["dedupe_key"], signal.payload["signal_type"]
        held = open_keys.setdefault((signal.account_id or "", kind), set())
        if signal.payload["status"] == "raised":
            held.add(key)
        else:
            held.clear()
    return {
        "open_signals": {k: v for k, v in open_keys.items() if v},
        "accounts": accounts,
        "history": [tuple(h) for h in history],
        "signal_ids": sorted({s.event_id for s in signals}),
    }
