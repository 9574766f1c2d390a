"""`churnwatch replay`: re-scoring from Kafka with a new scorecard, without alerting about history."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from services.scoring import store
from services.scoring.app import create_app
from services.scoring.config import DEFAULT_SCORECARD, load_scorecard
from services.scoring.consumer import read_state
from services.scoring.peers import PeerTable
from services.scoring.replay import Replayer, partition_of, publish_staged
from shared.db import create_engine, session_factory
from shared.events import Envelope
from shared.settings import Settings
from shared.topics import Topics
from tests.scoring.events import T0, daily_usage, group, nps, ticket
from tests.scoring.streams import publish, wait_for_applied
from tests.support.apps import serving
from tests.support.infra import API_AUTH, Infra, settings_env
from tests.support.kafka import read_topic, wait_for_events
from tests.support.processes import REPO_ROOT

STRICTER = (
    DEFAULT_SCORECARD.read_text()
    .replace('version: "2026-11-default"', 'version: "stricter"')
    .replace("red_below: 40 ", "red_below: 75 ")
    .replace("green_from: 70", "green_from: 90")
)


def events() -> list[Envelope]:
    out: list[Envelope] = []
    for n, score in enumerate((9, 6, 2)):
        account = f"acct-{n}"
        out.append(group(f"g{n}", account, f"Account {n}", seats=3))
        out += daily_usage(account, days=20, per_day=3, users=2)
        out.append(nps(f"n{n}", account, f"r{n}", score, T0 + timedelta(days=19)))
    out.append(ticket("t", "acct-2", "T-1", "open", T0 + timedelta(days=19), priority="urgent"))
    return sorted(out, key=lambda e: (e.occurred_at, e.event_id))


async def health(client: Any, account: str) -> dict[str, Any]:
    response = await client.get(f"/v1/accounts/{account}/health", headers=API_AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def stored_peers(sessions: Any) -> dict[int, list[Any]]:
    """Each partition's stored peer table, decoded, where it holds any account."""
    partitions = store.scoring_partitions
    async with sessions() as session:
        rows = (await session.execute(select(partitions.c.partition, partitions.c.peers))).all()
    tables = {p: PeerTable.decode(read_state(bytes(s))) for p, s in rows if s is not None}
    return {p: table.encode() for p, table in tables.items() if any(table.live.values())}


async def test_replay_with_a_new_scorecard_tells_only_what_holds_now(infra: Infra, tmp_path: Path) -> None:
    settings = infra.fresh_settings()
    stream = events()
    await publish(settings, stream)
    topics = Topics.from_settings(settings)
    async with serving(create_app(settings)) as client:
        await wait_for_applied(settings, len(stream))
        before = {a: await health(client, a) for a in ("acct-0", "acct-1", "acct-2")}
    signals_before = await read_topic(settings, topics.risk_signals)
    assert {b["scorecard_version"] for b in before.values()} == {"2026-11-default"}

    card_file = tmp_path / "stricter.yaml"
    card_file.write_text(STRICTER)
    stricter = load_scorecard(card_file)
    engine = create_engine(settings)
    try:
        sessions = session_factory(engine)
        live_peers = await stored_peers(sessions)
        assert sum(len(accounts) for table in live_peers.values() for accounts in table[2].values()) == 3
        dry = await Replayer(settings, stricter, sessions).run(None, dry_run=True)
        assert dry.accounts == 3 and dry.band_changed >= 1
        report = await Replayer(settings, stricter, sessions).run(None)
        assert (report.accounts, report.events_read) == (3, len(stream))
        assert report.raised == dry.raised and report.cleared == dry.cleared
        assert report.band_changed == dry.band_changed
        # The peers rebuilt from the partitions' events are those live scoring kept.
        assert await stored_peers(sessions) == live_peers
        # The same again: nothing holds differently, nothing is told.
        again = await Replayer(settings, stricter, sessions).run(None)
        assert again.raised == [] and again.cleared == [] and again.band_changed == 0
        await publish_staged(settings, sessions)
    finally:
        await engine.dispose()
    told = len(report.raised) + len(report.cleared)
    signals_after = await wait_for_events(settings, topics.risk_signals, len(signals_before) + told)
    known = {s.event_id for s in signals_before}  # the topic reads partition by partition
    new = [s for s in signals_after if s.event_id not in known]
    # Only the difference between what was open and what holds now, each marked as replayed.
    assert len(new) == told and all(s.payload["evidence"]["replayed"] for s in new)
    assert {s.payload["dedupe_key"] for s in new if s.payload["status"] == "raised"} == set(report.raised)

    stricter_settings = settings.model_copy(update={"scoring_scorecard_path": str(card_file)})
    async with serving(create_app(stricter_settings)) as client:
        after = {a: await health(client, a) for a in ("acct-0", "acct-1", "acct-2")}
        assert {a["scorecard_version"] for a in after.values()} == {"stricter"}
        assert after["acct-0"]["events_applied"] == before["acct-0"]["events_applied"]
        assert [a["band"] for a in after.values()] != [b["band"] for b in before.values()]
        history = (await client.get("/v1/accounts/acct-1/health/history", headers=API_AUTH)).json()["changes"]
        assert history and all(change["replayed"] for change in history)
        # Live scoring goes on from the rebuilt state.
        await publish(
            stricter_settings, [nps("n-late", "acct-1", "r-late", 10, T0 + timedelta(days=20), user_id="u9")]
        )
        for _ in range(100):
            body = await health(client, "acct-1")
            if body["events_applied"] == after["acct-1"]["events_applied"] + 1:
                break
            await asyncio.sleep(0.1)
        assert body["events_applied"] == after["acct-1"]["events_applied"] + 1


async def test_replay_of_one_account_through_the_cli(infra: Infra) -> None:
    settings: Settings = infra.fresh_settings()
    stream = events()
    await publish(settings, stream)
    async with serving(create_app(settings)):
        await wait_for_applied(settings, len(stream))
    env = settings_env(settings)
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shared.cli", "replay", "--account", "acct-2"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"replayed partitions [{partition_of('acct-2', settings.topic_partitions)}]" in result.stdout
    # Same scorecard, same events: the rebuilt account says exactly what it said.
    assert "accounts re-scored 1: shown score changed 0, band changed 0" in result.stdout
    assert "signals raised now 0" in result.stdout and "signals cleared now 0" in result.stdout
    refused = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "shared.cli", "replay", "--all", "--scorecard", "/nope.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "/nope.yaml: cannot read the scorecard" in refused.stderr
