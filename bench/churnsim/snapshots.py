"""A ChurnSim dataset's weekly risk snapshots and outcomes, as live scoring writes them.

Each account's events (ingest's own parser and attribution) go through scoring's `Scorer` and
`AccountEngine` in event time, the code the consumer and a replay run, and the snapshots and
outcomes it emits are written with the store functions the consumer calls, with the partition
watermarks it records. Not through Kafka: that path is tested on small streams
(tests/scoring/test_risk_snapshots_service.py); this fills a database for `churnwatch calibrate`
in minutes.

    .venv/bin/python -m bench.churnsim.snapshots bench/data/dev_socialnet7   # CHURNWATCH_* database
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.churnsim.dataset import load, recent_shift_days, segment_messages, shifted
from bench.segment_envelopes import envelopes_by_account
from services.scoring import store
from services.scoring.config import load_scorecard
from services.scoring.consumer import Scorer
from services.scoring.engine import Cause
from services.scoring.model import UnusableEvent, to_entry
from services.scoring.replay import partition_of
from services.scoring.risk import store as risk_store
from shared.db import create_engine, migrate, session_factory
from shared.settings import Settings, get_settings


@dataclass
class Folded:
    rows: risk_store.RiskRows
    max_event_at: dict[int, float]  # per partition, as the consumer records it
    simulated_end: datetime  # outcomes are decided by the simulator until then only
    accounts: int
    events: int


def fold(directory: Path, settings: Settings) -> Folded:
    dataset = load(directory)
    messages = list(segment_messages(dataset))
    shift = recent_shift_days(messages, datetime.now(UTC))
    by_account = envelopes_by_account(shifted(messages, shift), source="churnsim")
    scorer = Scorer(load_scorecard(None), settings.scoring_lateness_seconds)
    rows = risk_store.RiskRows.empty()
    max_event_at: dict[int, float] = {}
    for account_id, envelopes in by_account.items():
        partition = partition_of(account_id, settings.topic_partitions)
        last = max(e.occurred_at for e in envelopes).timestamp()
        max_event_at[partition] = max(max_event_at.get(partition, last), last)
    events = 0
    for account_id, envelopes in by_account.items():
        engine = scorer.new_engine(account_id)
        for event in sorted(envelopes, key=lambda e: (e.occurred_at, e.event_id)):
            try:
                entry = to_entry(event, scorer.card, scorer.competitors)
            except UnusableEvent:
                continue
            if entry is None:
                continue
            events += 1
            engine.add(entry, Cause(event.event_id, event.type.value, entry.t, event.user_id))
        # The partition's watermark reaches a quiet account's last weeks too, as it does live.
        engine.advance(max_event_at[partition_of(account_id, settings.topic_partitions)]
                       - settings.scoring_lateness_seconds)
        scorer.outputs(engine, risk=rows)
    simulated_end = datetime.combine(dataset.end_date, datetime.min.time(), UTC) + timedelta(days=shift)
    return Folded(rows, max_event_at, simulated_end, len(by_account), events)


async def write(settings: Settings, folded: Folded) -> None:
    await migrate(settings)
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session, session.begin():
            numbers = sorted(folded.max_event_at)
            locked = await store.lock_partitions(session, numbers)
            await risk_store.save(session, folded.rows)
            await store.save_partitions(session, {
                n: store.PartitionRow(locked[n].version + 1, folded.max_event_at[n]) for n in numbers
            })
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    settings = get_settings()
    folded = fold(Path(argv[0]), settings)
    asyncio.run(write(settings, folded))
    print(
        f"{folded.accounts} accounts, {folded.events} events: {len(folded.rows.snapshots)} snapshots, "
        f"{len(folded.rows.outcomes)} outcomes written; simulated until {folded.simulated_end.date()} "
        f"(calibrate with --until {folded.simulated_end.date()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
