"""The cost per event of live scoring with a churn-risk model next to the scorecard alone.

Issue 18's target: "the live score costs no more per event than today's". The model scores each
account at its daily ticks of event time, a batch's ticks in one `predict_proba` call across
accounts, explanations only for the scores that changed (services/scoring/risk/serving.py), so
its cost follows account-days, not events.

Two measures on the same simulated customer base (bench.scoring_throughput's workload, 2,000
accounts x 14 days, 129,832 events):
  1. offline, no I/O: one process's CPU time to decode nothing (envelopes are built first),
     fold, fire the watermark's timers, score with the model, build outputs and encode state,
     in batches of 2,000 as the consumer does; the arms alternate (scorecard, logistic
     regression, gradient boosting, again) so a busy machine skews all alike;
  2. `--processes`: scoring as a real process from Kafka to durable state
     (bench.scoring_throughput's run), with and without a model active in the registry.

The models are fitted as `churnwatch calibrate` fits (the same candidates) on this workload's own
weekly snapshots; their label is synthetic (low 4-week usage), which changes what they predict,
not what predicting costs.

    .venv/bin/python -m bench.scoring_model [--accounts 2000 --days 14] [--repeats 2] [--processes]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import command_line, machine, to_envelope, write_result
from bench.scoring_throughput import Workload, scoring_run
from services.scoring.config import load_scorecard
from services.scoring.consumer import PartitionState, Scorer, ScoringHandler
from services.scoring.engine import AccountEngine, Cause
from services.scoring.model import to_entry
from services.scoring.risk import store as risk_store
from services.scoring.risk.artifact import Artifact, sha256
from services.scoring.risk.calibration import SETTINGS, make_estimator
from services.scoring.risk.features import FIXED, FeatureSchema
from services.scoring.risk.serving import LiveModel
from services.scoring.risk.weekly import TakenSnapshot
from shared.db import create_engine, migrate
from shared.events import Envelope
from shared.settings import Settings
from tests.support.infra import running_infra

BATCH = 2_000
PARTITIONS = 6


def envelopes(workload: Workload) -> list[Envelope]:
    received = datetime.now(UTC)
    found = [e for e in (to_envelope(s, received) for s in workload.events()) if e is not None]
    found.sort(key=lambda e: (e.occurred_at, e.event_id))
    return found


def fold(scorer: Scorer, events: list[Envelope]) -> tuple[float, dict[str, Any]]:
    """CPU seconds to fold `events` as the consumer's batches do (no I/O), and what it made."""
    handler = ScoringHandler(scorer.card, scorer.lateness, scorer.snapshot_every)
    handler.scorer = scorer
    partitions = {n: PartitionState(n, 0, None) for n in range(PARTITIONS)}
    handler.partitions = partitions
    snapshots: list[TakenSnapshot] = []
    changes = scored = 0
    in_model = 0.0
    started = time.process_time()
    for start in range(0, len(events), BATCH):
        touched: dict[str, tuple[PartitionState, AccountEngine]] = {}
        for event in events[start : start + BATCH]:
            entry = to_entry(event, scorer.card, scorer.competitors)
            if entry is None or event.account_id is None:
                continue
            partition = partitions[zlib.crc32(event.account_id.encode()) % PARTITIONS]
            engine = partition.accounts.get(event.account_id)
            if engine is None:
                engine = partition.accounts[event.account_id] = scorer.new_engine(
                    event.account_id, partition.peers
                )
            engine.add(entry, Cause(event.event_id, event.type.value, entry.t, event.user_id))
            touched[event.account_id] = (partition, engine)
            if partition.max_event_at is None or entry.t > partition.max_event_at:
                partition.max_event_at = entry.t
        handler._fire_timers(sorted(partitions), touched)
        before = time.process_time()
        scored += scorer.score_with_model(engine for _, engine in touched.values())
        in_model += time.process_time() - before
        risk = risk_store.RiskRows.empty()
        for partition, engine in touched.values():
            rows, _ = scorer.outputs(engine, risk=risk)
            changes += len(rows)
            scorer.row(engine, partition.number)
            partition.schedule(engine)
        snapshots += risk.snapshots.values()
    seconds = time.process_time() - started
    return seconds, {"history_rows": changes, "model_scores": scored, "snapshots": snapshots,
                     "model_seconds": in_model}


def fitted(kind: str, snapshots: list[TakenSnapshot]) -> Artifact:
    """A model of calibrate's candidate `kind` on these snapshots, labelled by low usage."""
    snaps = [t.snapshot for t in snapshots]
    schema = FeatureSchema.from_snapshots(snaps)
    rows = np.asarray([schema.row(s) for s in snaps], dtype=float)
    usage = rows[:, FIXED.index("usage_28d")]
    labels = (usage < np.quantile(usage, 0.2)).astype(float)
    estimator = make_estimator(kind, SETTINGS[kind][0], 0).fit(rows, labels)
    reference = tuple(float(v) for v in np.median(rows, axis=0))
    return Artifact(schema, kind, 0.5, 30.0, estimator, reference)


async def register(settings: Settings, artifact: Artifact, since: datetime) -> None:
    await migrate(settings)
    data = artifact.to_bytes()
    engine = create_engine(settings)
    try:
        async with engine.begin() as conn:
            version = await risk_store.add_model(conn, {
                "created_at": datetime.now(UTC), "fitted_by": "bench",
                "features_version": artifact.schema.version,
                "columns": list(artifact.columns), "kind": artifact.kind, "threshold": artifact.threshold,
                "horizon_days": artifact.horizon_days, "fitted_until": since, "metrics": {},
                "artifact": data, "sha256": sha256(data),
            })
            await risk_store.activate(conn, version, "bench", datetime.now(UTC), "activate")
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scoring_model")
    defaults = Workload()
    parser.add_argument("--accounts", type=int, default=defaults.accounts)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--processes", action="store_true", help="also real scoring processes from Kafka")
    args = parser.parse_args()
    workload = Workload(args.accounts, args.days)
    card = load_scorecard(None)
    events = envelopes(workload)
    since = events[0].occurred_at  # the models govern the whole run

    def scorer(model: Artifact | None) -> Scorer:
        made = Scorer(card, 600.0)
        made.live_model = LiveModel(1, model, since.timestamp()) if model is not None else None
        return made

    _, first = fold(scorer(None), events)
    models = {kind: fitted(kind, first["snapshots"]) for kind in ("logistic_regression", "gradient_boosting")}
    arms: dict[str, list[float]] = {"scorecard": [], **{k: [] for k in models}}
    in_model: dict[str, list[float]] = {k: [] for k in arms}
    made: dict[str, dict[str, Any]] = {}
    for _ in range(args.repeats):
        for arm in arms:
            seconds, out = fold(scorer(models.get(arm)), events)
            arms[arm].append(round(seconds / len(events) * 1e6, 1))
            in_model[arm].append(round(out["model_seconds"] / len(events) * 1e6, 1))
            made[arm] = {"history_rows": out["history_rows"], "model_scores": out["model_scores"]}
    result: dict[str, Any] = {
        "benchmark": "scoring_model",
        "command": command_line(),
        **machine(),
        "workload": {"accounts": workload.accounts, "days": workload.days,
                     "usage_scale": workload.usage_scale, "seed": workload.seed, "events": len(events)},
        "model_columns": len(models["logistic_regression"].columns),
        "offline_cpu_us_per_event": arms,
        "of_which_model_us_per_event": in_model,  # score_with_model: features, predict_proba, words
        "outputs": made,
    }
    if args.processes:
        with running_infra() as infra, tempfile.TemporaryDirectory() as logs:
            sims = workload.events()
            runs: dict[str, list[float]] = {"scorecard": [], "gradient_boosting": []}
            for _ in range(args.repeats):
                for arm in runs:
                    settings = infra.fresh_settings(topic_partitions=PARTITIONS)
                    if arm != "scorecard":
                        asyncio.run(register(settings, models[arm], since))
                    run = scoring_run(infra, Path(logs), sims, 1, 900.0, settings=settings)
                    runs[arm].append(round(run["events_per_second"]))
            result["process_events_per_second"] = runs
    print(write_result("scoring_model", result).read_text())


if __name__ == "__main__":
    main()
