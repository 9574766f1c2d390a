"""Churn-risk quality on third-party data: ChurnSim datasets, folded by the live scoring engine.

Each dataset's Segment messages (as a product backend would send them) go through ingest's own
parser and attribution, then each account's events through scoring's `AccountEngine`, in event
time; the health score and the risk features are read every week. Outcomes label the weeks
(churn within `--horizon-days`), the earlier 60% of weeks fit the risk model and the later 40%
judge it, next to the live scorecard, a naive 28-day activity count and a logistic regression
on raw per-event counts. `final_*` datasets are never tuned on: they are reported, not studied.

    .venv/bin/python -m bench.churnsim_quality [--datasets dev_crm5,final_crm6] [--horizon-days 30]

Not through Kafka and the HTTP API: the engine is the same code, and this runs in minutes
instead of the hour a 2-million-event replay through the running system takes.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.churnsim.dataset import load, recent_shift_days, segment_messages, shifted
from bench.harness import command_line, machine, write_result
from bench.segment_envelopes import envelopes_by_account
from services.scoring.config import load_scorecard
from services.scoring.model import Competitors
from services.scoring.replay import partition_of
from services.scoring.risk.backtest import fold_accounts, weekly
from services.scoring.risk.evaluation import evaluate
from shared.settings import Settings

DATA = Path(__file__).resolve().parent / "data"
DEFAULT_DATASETS = ("dev_socialnet7_large", "dev_socialnet7", "dev_crm5", "final_crm6")


def run_dataset(name: str, horizon_days: float, path: Path = DATA) -> dict[str, Any]:
    started = time.monotonic()
    dataset = load(path / name)
    messages = list(segment_messages(dataset))
    shift = recent_shift_days(messages, datetime.now(UTC))
    by_account = envelopes_by_account(shifted(messages, shift), source="churnsim")
    first = min(e.occurred_at for events in by_account.values() for e in events).timestamp()
    # Churn is observed until the simulation's end only: later usage is of accounts whose
    # outcome the simulator never decided.
    simulated_end = datetime.combine(dataset.end_date, datetime.min.time(), UTC) + timedelta(days=shift)
    end = simulated_end.timestamp()
    card = load_scorecard(None)
    competitors = Competitors(card.competitors)
    # Folded together, in event time, partitioned as live scoring would (peers per partition).
    partitions = int(Settings.model_fields["topic_partitions"].default)
    moments = fold_accounts(
        by_account, weekly(first, end), card, competitors, lambda account: partition_of(account, partitions)
    )
    folded = time.monotonic() - started
    fitted, summary = evaluate(moments, end, horizon_days=horizon_days)
    return {
        "dataset": name,
        "held_out": dataset.held_out,
        "accounts": len(by_account),
        "messages": len(messages),
        "weekly_moments": len(moments),
        "fitted_settings": fitted.settings,
        "inner_split_roc_auc": fitted.inner_roc_auc,
        "seconds_to_fold": round(folded, 1),
        "seconds_total": round(time.monotonic() - started, 1),
        **summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--horizon-days", type=float, default=30.0)
    parser.add_argument("--result", default="churnsim_quality",
                        help="bench/results/<name>.json (datasets run side by side write apart)")
    args = parser.parse_args(argv)
    results = []
    for name in args.datasets.split(","):
        result = run_dataset(name, args.horizon_days)
        results.append(result)
        measured = result["measured"]
        print(
            f"{name}: chosen {result['chosen']} AUC {measured[result['chosen']]['roc_auc']}, "
            f"scorecard {measured['scorecard']['roc_auc']}, "
            f"naive {measured['naive_activity_28d']['roc_auc']}, "
            f"raw-count LR {measured.get('logistic_raw_counts', {}).get('roc_auc')}; "
            f"alerts {result['alerts_of_chosen_model']}"
        )
    path = write_result(
        args.result, {"command": command_line(), "machine": machine(), "datasets": results}
    )
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
