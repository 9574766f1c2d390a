"""Risk snapshots through the running scoring service on a real broker and database, and a
`churnwatch replay --all` that rewrites them identically."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from services.scoring.app import create_app
from services.scoring.config import load_scorecard
from services.scoring.replay import Replayer
from services.scoring.risk.features import FEATURES_VERSION
from services.scoring.risk.store import risk_outcomes, risk_snapshots
from services.scoring.risk.weekly import WEEK, next_moment
from shared.db import create_engine, session_factory
from shared.settings import Settings
from tests.scoring.events import T0, outcome
from tests.scoring.streams import publish, wait_for_applied, workload
from tests.support.apps import serving
from tests.support.infra import Infra


async def stored(settings: Settings) -> tuple[dict[tuple[str, float], Any], set[tuple[str, str, float]]]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            snaps = (await conn.execute(select(risk_snapshots))).mappings().all()
            outcomes = (await conn.execute(select(risk_outcomes))).all()
    finally:
        await engine.dispose()
    return (
        {
            (r["account_id"], r["at"].timestamp()): (
                r["features_version"], r["features"], r["scorecard_score"], r["activity_28d"]
            )
            for r in snaps
        },
        {(a, k, t.timestamp()) for a, k, t in outcomes},
    )


async def test_live_scoring_writes_weekly_snapshots_and_a_replay_reproduces_them(infra: Infra) -> None:
    settings = infra.fresh_settings()
    stream = workload()
    churned_at = T0 + timedelta(days=35, hours=1)
    stream.append(outcome("churn-0", "acct-0", "Account Churned", churned_at))
    stream.sort(key=lambda e: (e.occurred_at, e.event_id))
    await publish(settings, stream)
    async with serving(create_app(settings)):
        await wait_for_applied(settings, len(stream))
    live, outcomes = await stored(settings)

    first = min(e.occurred_at for e in stream).timestamp()
    last = max(e.occurred_at for e in stream).timestamp()
    grid = []
    at = next_moment(first, WEEK)
    while at <= last:
        grid.append(at)
        at += WEEK
    assert len(grid) >= 5
    by_account: dict[str, list[float]] = {}
    for account, at in live:
        by_account.setdefault(account, []).append(at)
    assert sorted(by_account) == sorted({e.account_id for e in stream if e.account_id})
    for account, moments in by_account.items():
        # Every grid moment the account lived through; none after acct-0 churned.
        expected = [m for m in grid if account != "acct-0" or m <= churned_at.timestamp()]
        assert sorted(moments) == expected, account
    sample = live[("acct-1", grid[-1])]
    assert sample[0] == FEATURES_VERSION and sample[1]["fixed"]["usage_28d"] > 0 and sample[2] is not None
    assert "report built" in sample[1]["events"]
    assert outcomes == {("acct-0", "churned", churned_at.timestamp())}

    engine = create_engine(settings)
    try:
        # Gone, or wrong: the replay writes them again from the events Kafka retains.
        async with engine.begin() as conn:
            await conn.execute(delete(risk_outcomes))
            await conn.execute(delete(risk_snapshots).where(risk_snapshots.c.account_id == "acct-2"))
            await conn.execute(update(risk_snapshots).values(activity_28d=-1.0))
        report = await Replayer(settings, load_scorecard(None), session_factory(engine)).run(None)
    finally:
        await engine.dispose()
    assert report.snapshots == len(live)
    replayed, replayed_outcomes = await stored(settings)
    assert replayed == live
    assert replayed_outcomes == outcomes
