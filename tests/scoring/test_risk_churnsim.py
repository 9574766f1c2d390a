"""On third-party data: the fitted risk ranks the later weeks' churners above the naive count.

ChurnSim's socialnet7 (bench/data/dev_socialnet7: 663 accounts, five months) through ingest's
parser and the live scoring engine, as `make bench-quality` runs it, at the default horizon.
"""

from __future__ import annotations

import pytest

from bench.churnsim_quality import DATA, run_dataset


# 800,000 events folded one by one: about two minutes on a quiet 2-core machine, more beside a
# heavy job; the suite's 300 s guard is for hangs, not for work of this size.
@pytest.mark.timeout(1200)
def test_the_fitted_model_beats_the_activity_count_on_held_out_weeks() -> None:
    result = run_dataset("dev_socialnet7", horizon_days=30, path=DATA)
    measured = result["measured"]
    chosen = measured[result["chosen"]]["roc_auc"]
    assert result["validation_rows"] > 1_000
    assert chosen > measured["naive_activity_28d"]["roc_auc"]
    assert chosen > measured["scorecard"]["roc_auc"]
