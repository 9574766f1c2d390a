"""`churnwatch calibrate` and `churnwatch model` end to end, on a real database filled with the
weekly snapshots and outcomes live scoring's engine and store write for ChurnSim's tiny dataset
(tests/data/churnsim_tiny: 182 accounts, 150,000 events, 11 churns). So few churns fit only
with a 14-day horizon and 3 churns on each side of the split: the figures prove the path, not
the model (`make bench-quality` measures that)."""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from bench.churnsim.snapshots import fold, write
from services.scoring.risk.artifact import sha256
from services.scoring.risk.store import risk_model_activations, risk_models
from shared.db import create_engine
from shared.settings import Settings
from tests.support.infra import Infra, settings_env
from tests.support.processes import REPO_ROOT

# So few churns fit only on a short horizon, with few churns asked for on each side of the split.
FEW = ("--min-churns", "3", "--horizon-days", "14")
TINY = REPO_ROOT / "tests" / "data" / "churnsim_tiny"
pytestmark = pytest.mark.timeout(900)  # folding 150,000 events one by one takes a minute or two


@dataclass
class Filled:
    settings: Settings
    until: str  # the simulation's end: outcomes after it were never decided
    snapshots: int


@pytest.fixture(scope="module")
def filled(infra: Infra) -> Iterator[Filled]:
    settings = infra.fresh_settings()
    folded = fold(TINY, settings)
    asyncio.run(write(settings, folded))
    yield Filled(settings, folded.simulated_end.date().isoformat(), len(folded.rows.snapshots))


def churnwatch(filled: Filled, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args],
        cwd=REPO_ROOT,
        env=settings_env(filled.settings) | {"USER": "tester"},
        capture_output=True,
        text=True,
        timeout=300,
    )


async def registry(settings: Settings) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            models = [dict(r) for r in (await conn.execute(select(risk_models))).mappings()]
            log = [dict(r) for r in (await conn.execute(select(risk_model_activations))).mappings()]
    finally:
        await engine.dispose()
    return models, log


async def test_too_few_outcomes_says_so_with_the_counts_and_stores_nothing(filled: Filled) -> None:
    result = churnwatch(filled, "calibrate", "--until", filled.until, "--activate", "--force")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "too few outcomes to calibrate" in result.stderr
    assert "at least 20 churns" in result.stderr and "labelled of" in result.stderr
    assert (await registry(filled.settings)) == ([], [])
    empty = churnwatch(filled, "calibrate", "--until", "2001-01-01")
    assert empty.returncode == 3 and "no risk snapshots by 2001-01-01" in empty.stderr


async def test_calibrate_report_activate_list_and_rollback(filled: Filled, tmp_path: Path) -> None:
    fitted = churnwatch(
        filled, "calibrate", "--until", filled.until, *FEW, "--report", str(tmp_path)
    )
    assert fitted.returncode == 0, fitted.stderr
    summary = json.loads(fitted.stdout)
    measured = summary["measured"]
    assert summary["chosen"] in ("logistic_regression", "gradient_boosting")
    for name in (summary["chosen"], "scorecard", "naive_activity_28d"):
        assert 0 <= measured[name]["roc_auc"] <= 1 and 0 <= measured[name]["pr_auc"] <= 1
        assert measured[name]["precision"] is not None and measured[name]["recall"] is not None
    assert measured[summary["chosen"]]["brier"] is not None and measured["scorecard"]["brier"] is None
    assert summary["observed_until"].startswith(filled.until)
    counts = summary["counts"]
    assert counts["snapshots"] <= filled.snapshots and counts["churned_within_horizon"] >= 6
    assert summary["validation_from"] < summary["observed_until"]
    assert summary["train_rows"] > 0 and summary["validation_rows"] > 0
    assert summary["beats_scorecard"] == (
        measured[summary["chosen"]]["roc_auc"] > measured["scorecard"]["roc_auc"]
    )
    page = (tmp_path / "index.html").read_text()
    assert page.count("<svg") == 4 and "ROC" in page and "Reliability" in page and "Lift" in page
    assert "naive 28-day count" in page and summary["chosen"] in page
    assert (await registry(filled.settings)) == ([], [])  # nothing stored without --save/--activate

    # Earlier knowledge: fewer snapshots, and the same refusal rule.
    earlier = churnwatch(filled, "calibrate", "--until", "2026-09-15", *FEW)
    if earlier.returncode == 0:
        known = json.loads(earlier.stdout)["counts"]["snapshots"]
    else:
        assert earlier.returncode == 3, earlier.stderr
        found = re.search(r"labelled of (\d+) snapshots", earlier.stderr)
        assert found is not None, earlier.stderr
        known = int(found.group(1))
    assert 0 < known < counts["snapshots"]

    activated = churnwatch(filled, "calibrate", "--until", filled.until, *FEW, "--activate")
    models, log = await registry(filled.settings)
    if summary["beats_scorecard"]:
        assert activated.returncode == 0 and json.loads(activated.stdout)["version"] == 1
    else:
        assert activated.returncode == 4 and "does not beat the scorecard" in activated.stderr
        assert models == [] and log == []
        forced = churnwatch(
            filled, "calibrate", "--until", filled.until, *FEW, "--activate", "--force"
        )
        assert forced.returncode == 0, forced.stderr
    saved = churnwatch(filled, "calibrate", "--until", filled.until, *FEW, "--save")
    assert saved.returncode == 0 and json.loads(saved.stdout)["activated"] is False
    models, log = await registry(filled.settings)
    assert [m["version"] for m in models] == [1, 2]
    assert [(e["version"], e["action"], e["activated_by"]) for e in log] == [(1, "activate", "tester")]
    assert models[0]["fitted_by"] == "tester" and len(str(models[0]["sha256"])) == 64

    assert churnwatch(filled, "model", "activate", "2", "--by", "alice").returncode == 0
    listed = churnwatch(filled, "model", "list")
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert lines[1].startswith("* v2") and "by alice" in lines[1] and lines[0].startswith("  v1")
    rolled = churnwatch(filled, "model", "rollback", "--by", "bob")
    assert rolled.returncode == 0 and "model v1 active (rollback by bob)" in rolled.stdout
    again = churnwatch(filled, "model", "rollback")
    assert again.returncode == 2 and "nothing to roll back to" in again.stderr
    _, log = await registry(filled.settings)
    assert [(e["version"], e["action"], e["activated_by"]) for e in log] == [
        (1, "activate", "tester"), (2, "activate", "alice"), (1, "rollback", "bob")
    ]

    # A stored model whose schema is not this code's is refused, and the active one stays.
    engine = create_engine(filled.settings)
    try:
        async with engine.begin() as conn:
            raw = pickle.loads(bytes(models[1]["artifact"]))
            raw["fixed"] = [*raw["fixed"][:-1], "a_feature_this_code_lacks"]
            forged = pickle.dumps(raw)
            await conn.execute(
                update(risk_models)
                .where(risk_models.c.version == 2)
                .values(artifact=forged, sha256=sha256(forged))
            )
    finally:
        await engine.dispose()
    refused = churnwatch(filled, "model", "activate", "2")
    assert refused.returncode == 2
    assert "model version 2 refused" in refused.stderr and "a_feature_this_code_lacks" in refused.stderr
    _, log = await registry(filled.settings)
    assert log[-1]["version"] == 1 and len(log) == 3
