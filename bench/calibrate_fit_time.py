"""How long `churnwatch calibrate`'s fit takes at scale: issue 18's target is 100,000 accounts x 26
weekly snapshots in under 10 minutes on 2 cores.

The rows are synthetic but shaped as the real ones: the features-v2 columns of a schema with 20
event names (87 columns), counts drawn log-normal per account and drifting week to week, and a
churn label from a logistic function of a few of them (about 3% of rows positive), so both
candidate families have something to learn and early stopping behaves as on real data. What is
timed is `services.scoring.risk.calibration.fit` itself, end to end: the inner split that picks
each family's settings, the final fits, the baselines and the validation measures.

    .venv/bin/python -m bench.calibrate_fit_time [--accounts 100000 --weeks 26]
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from typing import Any

import numpy as np

from bench.harness import command_line, machine, write_result
from services.scoring.model import DAY
from services.scoring.risk.calibration import Observation, fit
from services.scoring.risk.features import FEATURES_VERSION, FeatureSchema

WEEK = 7 * DAY
EVENT_NAMES = tuple(f"event_{i:02d}" for i in range(20))


def observations(accounts: int, weeks: int, seed: int) -> tuple[list[Observation], tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    columns = FeatureSchema(FEATURES_VERSION, EVENT_NAMES).columns
    width = len(columns)
    level = rng.normal(0.0, 1.0, size=(accounts, width))
    weights = np.zeros(width)
    weights[rng.choice(width, size=8, replace=False)] = rng.normal(0.0, 0.8, size=8)
    observed: list[Observation] = []
    for week in range(weeks):
        at = 1_700_000_000.0 + week * WEEK
        rows = level + rng.normal(0.0, 0.3, size=(accounts, width))
        logit = rows @ weights - 4.0
        labels = rng.random(accounts) < 1.0 / (1.0 + np.exp(-logit))
        activity = np.expm1(np.clip(rows[:, 1] + 3.0, 0.0, 12.0))
        for i in range(accounts):
            observed.append(
                Observation(
                    account_id=f"acct-{i}",
                    at=at,
                    row=rows[i],  # a view: 2.6 million rows of Python floats would take ~12 GB
                    label=int(labels[i]),
                    scorecard_score=float(100.0 - 10.0 * rows[i, 0]),
                    activity_28d=float(activity[i]),
                )
            )
    return observed, columns


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--result", default="calibrate_fit_time")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows, columns = observations(args.accounts, args.weeks, args.seed)
    built = time.monotonic() - started
    cpu_before = os.times()
    started = time.monotonic()
    fitted = fit(rows, columns, horizon_days=30)
    seconds = time.monotonic() - started
    cpu_after = os.times()
    result: dict[str, Any] = {
        "command": command_line(),
        "machine": machine(),
        "accounts": args.accounts,
        "weekly_snapshots": args.weeks,
        "rows": len(rows),
        "columns": len(columns),
        "positive_share": round(sum(o.label for o in rows) / len(rows), 4),
        "seconds_to_build_rows": round(built, 1),
        "seconds_to_fit": round(seconds, 1),
        "cpu_seconds_to_fit": round(
            (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system), 1
        ),
        "max_rss_megabytes": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "chosen": fitted.chosen,
        "settings": fitted.settings,
        "validation_roc_auc": {k: round(m.roc_auc, 4) for k, m in fitted.measured.items()},
        "target_seconds": 600,
    }
    path = write_result(args.result, result)
    print(f"{len(rows):,} rows x {len(columns)} columns fitted in {seconds:.0f} s "
          f"(chosen {fitted.chosen}); written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
