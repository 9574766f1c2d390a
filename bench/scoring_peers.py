"""What the peer comparison costs per event: the same events folded by the live engine with a
partition's peer table and without one, alternately, in one process.

    .venv/bin/python -m bench.scoring_peers [--dataset tests/data/churnsim_tiny] [--rounds 3]

ChurnSim's Segment messages (through ingest's parser, as `bench.churnsim_quality` reads them)
are folded in event-time order by one `AccountEngine` per account, all on one partition. The
best of `--rounds` runs of each mode is kept (other work on the machine only slows a run), and
so is the encoded peer table's size: it is written with the partition row in every batch.
"""

from __future__ import annotations

import argparse
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from bench.churnsim.dataset import load, recent_shift_days, segment_messages, shifted
from bench.harness import command_line, machine, write_result
from bench.segment_envelopes import envelopes_by_account
from services.scoring.config import load_scorecard
from services.scoring.engine import AccountEngine, Cause
from services.scoring.model import Competitors, Entry, to_entry
from services.scoring.peers import PeerTable

TINY = Path(__file__).resolve().parent.parent / "tests" / "data" / "churnsim_tiny"


def entries(dataset: Path) -> list[tuple[str, Entry, Cause]]:
    messages = list(segment_messages(load(dataset)))
    by_account = envelopes_by_account(
        shifted(messages, recent_shift_days(messages, datetime.now(UTC))), source="churnsim"
    )
    card = load_scorecard(None)
    competitors = Competitors(card.competitors)
    events = sorted((e for s in by_account.values() for e in s), key=lambda e: (e.occurred_at, e.event_id))
    out = []
    for event in events:
        entry = to_entry(event, card, competitors)
        if entry is not None and event.account_id is not None:
            out.append((event.account_id, entry, Cause(event.event_id, event.type.value, entry.t)))
    return out


def fold(stream: list[tuple[str, Entry, Cause]], peers: PeerTable | None) -> float:
    card = load_scorecard(None)
    engines: dict[str, AccountEngine] = {}
    started = time.perf_counter()
    for account_id, entry, cause in stream:
        engine = engines.get(account_id)
        if engine is None:
            engine = engines[account_id] = AccountEngine(account_id, card, 600.0, peers=peers)
        engine.add(entry, cause)
        engine.take_outputs()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=TINY)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    stream = entries(args.dataset)
    best: dict[str, float] = {"without_peers": float("inf"), "with_peers": float("inf")}
    table = PeerTable()
    for _ in range(args.rounds):
        best["without_peers"] = min(best["without_peers"], fold(stream, None))
        table = PeerTable()
        best["with_peers"] = min(best["with_peers"], fold(stream, table))
    per_event = {mode: round(seconds / len(stream) * 1e6, 2) for mode, seconds in best.items()}
    stored = zlib.compress(orjson.dumps(table.encode()), 1)
    result: dict[str, Any] = {
        "command": command_line(),
        "machine": machine(),
        "dataset": str(args.dataset),
        "events": len(stream),
        "accounts": len({a for a, _, _ in stream}),
        "microseconds_per_event": per_event,
        "added_share": round(per_event["with_peers"] / per_event["without_peers"] - 1, 4),
        "peer_table_bytes_stored": len(stored),
        "peers_kept": sum(len(a) for a in table.live.values()),
    }
    print(result)
    print(f"written to {write_result('scoring_peers', result)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
