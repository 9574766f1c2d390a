"""Live scoring with the registry's active churn-risk model, on a real broker and database: the
running service scores from an activated model (explained in its words), refuses at start a
model this code cannot read and keeps the last good one, follows a new activation and a
rollback without a restart, raises and clears churn_risk with hysteresis, and a replay with the
model gives the same scores as live scoring did."""

from __future__ import annotations

import asyncio
import pickle
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from services.scoring.app import create_app
from services.scoring.config import load_scorecard
from services.scoring.replay import Replayer
from services.scoring.risk import store as risk_store
from services.scoring.risk.artifact import Artifact, sha256
from services.scoring.store import account_health, score_changes
from shared.db import create_engine, migrate, session_factory
from shared.events import Envelope
from shared.settings import Settings
from shared.topics import Topics
from tests.scoring.events import T0, daily_usage, group
from tests.scoring.risk_models import usage_model
from tests.scoring.streams import publish, wait_for_applied
from tests.support.apps import serving
from tests.support.infra import API_AUTH, Infra
from tests.support.kafka import read_topic

ACCOUNTS = 6
SINCE = T0 + timedelta(days=10)  # the models' calibrate cut: they score from here on


def lives(first_day: int, last_day: int) -> list[Envelope]:
    """Even accounts use the product every day; odd ones go quiet from day 30 to day 150."""
    events: list[Envelope] = []
    for n in range(ACCOUNTS):
        account = f"acct-{n}"
        if first_day == 0:
            events.append(group(f"g-{n}", account, f"Account {n}", seats=5))
        for day in range(first_day, last_day):
            if n % 2 and 30 <= day < 150:
                continue
            events += daily_usage(account, 1, 4, start=T0 + timedelta(days=day), prefix=f"u{day}")
    events.sort(key=lambda e: (e.occurred_at, e.event_id))
    return events


async def register(settings: Settings, artifact: Artifact, *, activate: bool, forge: bool = False) -> int:
    """Store a model as `churnwatch calibrate --save` does, and activate it as `model activate` does;
    `forge`: its bytes say another feature version (what an upgrade of this code meets)."""
    data = artifact.to_bytes()
    if forge:
        raw = pickle.loads(data)
        raw["features_version"] = raw["features_version"] + 100
        data = pickle.dumps(raw)
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            version = await risk_store.add_model(conn, {
                "created_at": datetime.now(UTC), "fitted_by": "tester",
                "features_version": artifact.schema.version, "columns": list(artifact.columns),
                "kind": artifact.kind, "threshold": artifact.threshold,
                "horizon_days": artifact.horizon_days, "fitted_until": SINCE, "metrics": {},
                "artifact": data, "sha256": sha256(data),
            })
            if activate:
                await risk_store.lock_registry(conn)
                await risk_store.activate(conn, version, "tester", datetime.now(UTC), "activate")
    finally:
        await engine.dispose()
    return version


async def activate(settings: Settings, version: int, action: str) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            await risk_store.lock_registry(conn)
            await risk_store.activate(conn, version, "tester", datetime.now(UTC), action)
    finally:
        await engine.dispose()


async def serving_model(client: httpx.AsyncClient, version: int, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status: dict[str, Any] = (await client.get("/v1/scoring/model", headers=API_AUTH)).json()
        if status["version"] == version or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def stored(settings: Settings) -> tuple[dict[str, dict[str, Any]], list[tuple[Any, ...]]]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(account_health))).mappings().all()
            history = (
                await conn.execute(
                    select(
                        score_changes.c.account_id, score_changes.c.event_id, score_changes.c.occurred_at,
                        score_changes.c.score, score_changes.c.band, score_changes.c.model_version,
                        score_changes.c.factors,
                    ).order_by(score_changes.c.account_id, score_changes.c.occurred_at, score_changes.c.id)
                )
            ).all()
    finally:
        await engine.dispose()
    return {r["account_id"]: dict(r) for r in rows}, [tuple(h) for h in history]


async def test_an_activated_model_scores_live_a_bad_one_is_refused_and_a_rollback_returns(
    infra: Infra,
) -> None:
    settings = infra.fresh_settings(scoring_model_poll_seconds=0.2)
    await migrate(settings)
    good = await register(settings, usage_model(), activate=True)
    bad = await register(settings, usage_model(), activate=True, forge=True)
    first = lives(0, 60)
    await publish(settings, first)
    async with serving(create_app(settings)) as client:
        status = await serving_model(client, good)
        # Refused at start with the difference named; the last good model serves.
        assert status["serving"] == "model" and status["version"] == good, status
        assert [r["version"] for r in status["refused"]] == [bad]
        assert "feature version" in status["refused"][0]["reason"]
        await wait_for_applied(settings, len(first))
        accounts, history = await stored(settings)
        # The quiet accounts' last daily tick has been scored by the model.
        assert {a: r["model_version"] for a, r in accounts.items()} == {f"acct-{n}": good for n in range(6)}
        model_rows = [h for h in history if h[5] is not None]
        assert model_rows and all(h[5] == good and h[2] >= SINCE for h in model_rows)
        assert all(h[5] is None for h in history if h[2] < SINCE)
        quiet = (await client.get("/v1/accounts/acct-1/health", headers=API_AUTH)).json()
        busy = (await client.get("/v1/accounts/acct-0/health", headers=API_AUTH)).json()
        assert quiet["model_version"] == good and quiet["score"] < busy["score"]
        assert "events in the last 4 weeks" in quiet["factors"][0]["detail"]
        assert "the typical account's" in quiet["factors"][0]["detail"]
        page = (await client.get("/v1/accounts/acct-1/health/history", headers=API_AUTH)).json()
        assert page["changes"][0]["model_version"] == good
        assert "events in the last 4 weeks" in page["changes"][0]["factors"][0]["detail"]

        # A new activation is followed without a restart...
        boosted = await register(settings, usage_model("gradient_boosting", threshold=0.6), activate=True)
        assert (await serving_model(client, boosted))["version"] == boosted
        second = lives(60, 90)
        await publish(settings, second)
        await wait_for_applied(settings, len(first) + len(second))
        accounts, history = await stored(settings)
        assert {r["model_version"] for r in accounts.values()} == {boosted}
        after = [h for h in history if h[2] >= T0 + timedelta(days=61) and h[5] is not None]
        assert after and {h[5] for h in after} == {boosted}

        # ...and so is a rollback (the registry row `churnwatch model rollback` writes).
        await activate(settings, good, "rollback")
        assert (await serving_model(client, good))["version"] == good
        third = lives(90, 120)
        await publish(settings, third)
        await wait_for_applied(settings, len(first) + len(second) + len(third))
        accounts, _ = await stored(settings)
        assert {r["model_version"] for r in accounts.values()} == {good}
        # Quiet for 90 days now: what pulls its score down, in the model's words.
        quiet = (await client.get("/v1/accounts/acct-1/health", headers=API_AUTH)).json()
        assert quiet["band"] == "red" and quiet["model_version"] == good
        assert "events in the last 4 weeks" in quiet["top_factors"][0]
        assert "below the typical account's" in quiet["top_factors"][0]
        assert "raises the risk" in quiet["top_factors"][0]


async def test_churn_risk_is_raised_and_cleared_and_a_replay_scores_as_live_did(infra: Infra) -> None:
    settings = infra.fresh_settings()
    await migrate(settings)
    version = await register(settings, usage_model(), activate=True)
    stream = lives(0, 181)
    await publish(settings, stream)
    async with serving(create_app(settings)):
        await wait_for_applied(settings, len(stream))
    live_accounts, live_history = await stored(settings)
    signals = await read_topic(settings, Topics.from_settings(settings).risk_signals)
    risk = [s for s in signals if s.payload["signal_type"] == "churn_risk"]
    by_account: dict[str, list[str]] = {}
    for signal in risk:
        by_account.setdefault(signal.account_id or "", []).append(signal.payload["status"])
    # The quiet accounts cross the threshold once, and clear once they are busy again.
    assert by_account == {f"acct-{n}": ["raised", "cleared"] for n in (1, 3, 5)}, by_account
    raised = next(s for s in risk if s.payload["status"] == "raised")
    evidence = raised.payload["evidence"]
    assert evidence["model_version"] == version and evidence["churn_probability"] >= 0.5
    assert "events in the last 4 weeks" in evidence["top_contributions"][0]
    assert raised.payload["band"] == "red" and "churn risk" in raised.payload["summary"]
    quiet_model = [h for h in live_history if h[0] == "acct-1" and h[5] == version]
    assert {h[4] for h in quiet_model} >= {"green", "yellow", "red"}

    card = load_scorecard(settings.scoring_scorecard_path)
    engine = create_engine(settings)
    try:
        report = await Replayer(settings, card, session_factory(engine)).run(None)
    finally:
        await engine.dispose()
    assert report.model.startswith(f"model v{version}") and report.model_scores > 0
    replayed_accounts, replayed_history = await stored(settings)
    assert replayed_history == live_history
    for account, row in live_accounts.items():
        again = replayed_accounts[account]
        assert (again["score"], again["band"], again["model_version"]) == (
            row["score"], row["band"], row["model_version"]
        ), account
