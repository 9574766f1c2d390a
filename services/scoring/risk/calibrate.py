"""`churnwatch calibrate`'s logic: from stored snapshots and outcomes to a judged model. No I/O.

Only what was known at `until` is used: snapshots taken by then, outcomes that happened by then,
and labels whose horizon had passed by then (or whose churn had already happened). The fit is
`calibration.fit`'s time split; the same validation rows score the model, the scorecard shown
then and the naive 28-day activity count, and are kept for the report's curves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.inspection import permutation_importance
from threadpoolctl import threadpool_limits

from services.scoring.model import DAY, moment
from services.scoring.risk.artifact import Artifact
from services.scoring.risk.backtest import Moment
from services.scoring.risk.calibration import FIT_THREADS, Fit, Observation, TooFewOutcomes
from services.scoring.risk.evaluation import evaluate, observations
from services.scoring.risk.features import FEATURES_VERSION, FIXED, OTHER_EVENTS, FeatureSchema
from services.scoring.risk.labels import churn_label
from services.scoring.risk.store import StoredSnapshot
from services.scoring.risk.weekly import from_stored

EFFECT_ROWS = 50_000  # validation rows that measure each column's effect in the report


def moments(snapshots: Sequence[StoredSnapshot], outcomes: Sequence[tuple[str, str, float]]) -> list[Moment]:
    """Each snapshot with the account's first churn after it (None: none known)."""
    churns: dict[str, list[float]] = {}
    for account, kind, at in outcomes:
        if kind == "churned":
            churns.setdefault(account, []).append(at)
    for times in churns.values():
        times.sort()
    out = []
    for s in snapshots:
        after = [t for t in churns.get(s.account_id, ()) if t > s.at]
        out.append(
            Moment(
                s.account_id,
                from_stored(s.at, s.features_version, s.features),
                s.scorecard_score,
                s.activity_28d,
                after[0] if after else None,
            )
        )
    return out


def label_counts(found: Sequence[Moment], observed_until: float, horizon_days: float) -> dict[str, int]:
    labels = [churn_label(m.snapshot.at, m.churned_at, observed_until, horizon_days) for m in found]
    return {
        "snapshots": len(found),
        "accounts": len({m.account_id for m in found}),
        "labelled": sum(label is not None for label in labels),
        "churned_within_horizon": sum(label == 1 for label in labels),
        "censored": sum(label is None for label in labels),
        "churned_accounts": len({m.account_id for m in found if m.churned_at is not None}),
    }


@dataclass
class Calibration:
    fit: Fit
    artifact: Artifact
    summary: dict[str, Any]
    validation: list[Observation]
    risks: dict[str, NDArray[np.float64]]  # per measure, on the validation rows (higher: likelier)
    effects: list[tuple[str, float, float]]  # (column, AUC lost when shuffled, its std)


def schema_of(columns: Sequence[str]) -> FeatureSchema:
    names = [
        c.removeprefix("events:")
        for c in columns[len(FIXED) :]
        if c.startswith("events:") and c != f"events:{OTHER_EVENTS}"
    ]
    return FeatureSchema(FEATURES_VERSION, tuple(names))


def calibrate(
    found: Sequence[Moment],
    observed_until: float,
    *,
    horizon_days: float = 30,
    min_churns: int = 20,
    target_precision: float = 0.7,
    validation_share: float = 0.4,
) -> Calibration:
    """Fit and judge; TooFewOutcomes (its message with the counts) when there is not enough."""
    counts = label_counts(found, observed_until, horizon_days)
    try:
        fitted, summary = evaluate(
            found,
            observed_until,
            horizon_days=horizon_days,
            validation_share=validation_share,
            target_precision=target_precision,
            min_churns=min_churns,
        )
    except TooFewOutcomes as exc:
        raise TooFewOutcomes(
            f"too few outcomes to calibrate: {exc}; in all {counts['labelled']} labelled of "
            f"{counts['snapshots']} snapshots ({counts['accounts']} accounts), "
            f"{counts['churned_within_horizon']} churned within {horizon_days:g} days, "
            f"{counts['censored']} not yet known"
        ) from exc
    schema = schema_of(fitted.columns)
    labelled = observations(found, schema, observed_until, horizon_days)
    validation = [o for o in labelled if o.at >= fitted.validation_from]
    x = np.asarray([o.row for o in validation], dtype=float)
    y = np.asarray([o.label for o in validation], dtype=float)
    risks = {
        "model": fitted.risk([o.row for o in validation]),
        "scorecard": np.asarray(
            [100.0 - (o.scorecard_score if o.scorecard_score is not None else 100.0) for o in validation]
        ),
        "naive_activity_28d": -np.asarray([o.activity_28d for o in validation], dtype=float),
    }
    # Each column's effect on a bounded sample of the validation rows: a column shuffled 3 times
    # over every row of a large base would cost 3 x columns predictions of all of them.
    sample = np.random.default_rng(0).permutation(len(y))[:EFFECT_ROWS]
    with threadpool_limits(limits=FIT_THREADS):
        shuffled = permutation_importance(
            fitted.estimator, x[sample], y[sample], scoring="roc_auc", n_repeats=3, random_state=0
        )
    effects = sorted(
        zip(fitted.columns, map(float, shuffled.importances_mean), map(float, shuffled.importances_std),
            strict=True),
        key=lambda e: -e[1],
    )
    chosen = fitted.measured[fitted.chosen]
    assert chosen.threshold is not None
    # The explanations' reference: each column's median over the rows the model was fitted on.
    training = [o.row for o in labelled if o.at + horizon_days * DAY <= fitted.validation_from]
    reference = tuple(float(v) for v in np.median(np.asarray(training, dtype=float), axis=0))
    artifact = Artifact(schema, fitted.chosen, chosen.threshold, horizon_days, fitted.estimator, reference)
    summary = {
        **summary,
        "observed_until": moment(observed_until).isoformat(),
        "validation_from": moment(fitted.validation_from).isoformat(),
        "counts": counts,
        "beats_scorecard": beats_scorecard(fitted),
        "feature_effects": [
            {"column": c, "auc_lost_when_shuffled": round(m, 4)} for c, m, _ in effects[:15]
        ],
    }
    return Calibration(fitted, artifact, summary, validation, risks, effects)


def beats_scorecard(fitted: Fit) -> bool:
    """Activation's bar: a better validation ROC AUC than the live scorecard's, on the same rows."""
    return fitted.measured[fitted.chosen].roc_auc > fitted.measured["scorecard"].roc_auc
