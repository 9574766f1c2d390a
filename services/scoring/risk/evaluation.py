"""From weekly moments to a judged model: labels, the time split, the fit, and its alerts. No I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from services.scoring.risk.backtest import Moment, judge_alerts
from services.scoring.risk.calibration import Fit, Observation, fit, split_time
from services.scoring.risk.features import FeatureSchema
from services.scoring.risk.labels import churn_label


def observations(
    moments: Sequence[Moment], schema: FeatureSchema, observed_until: float, horizon_days: float
) -> list[Observation]:
    labelled: list[Observation] = []
    for m in moments:
        label = churn_label(m.snapshot.at, m.churned_at, observed_until, horizon_days)
        if label is None:
            continue
        labelled.append(
            Observation(
                account_id=m.account_id,
                at=m.snapshot.at,
                row=schema.row(m.snapshot),
                label=label,
                scorecard_score=m.scorecard_score,
                activity_28d=float(m.activity_28d),
                counts_by_name=[math.expm1(m.snapshot.by_name.get(n, 0.0)) for n in schema.event_names],
            )
        )
    return labelled


def evaluate(
    moments: Sequence[Moment],
    observed_until: float,
    *,
    horizon_days: float = 30,
    validation_share: float = 0.4,
    target_precision: float = 0.7,
    min_churns: int = 20,
) -> tuple[Fit, dict[str, Any]]:
    """Fit on the earlier weeks, judge on the later: the summary a calibration reports."""
    validation_from = split_time(
        (
            m.snapshot.at
            for m in moments
            if churn_label(m.snapshot.at, m.churned_at, observed_until, horizon_days) is not None
        ),
        validation_share,
    )
    # The event names become columns from what was known before validation only.
    schema = FeatureSchema.from_snapshots([m.snapshot for m in moments if m.snapshot.at < validation_from])
    labelled = observations(moments, schema, observed_until, horizon_days)
    fitted = fit(
        labelled,
        schema.columns,
        horizon_days,
        validation_share=validation_share,
        target_precision=target_precision,
        min_churns=min_churns,
    )
    chosen = fitted.measured[fitted.chosen]
    assert chosen.threshold is not None
    later = [m for m in moments if m.snapshot.at >= fitted.validation_from]
    rows = [schema.row(m.snapshot) for m in later]
    risks: list[float] = list(map(float, fitted.risk(rows))) if rows else []
    alerts = judge_alerts(list(zip(later, risks, strict=True)), chosen.threshold,
                          fitted.validation_from, observed_until)
    summary = {
        "horizon_days": horizon_days,
        "chosen": fitted.chosen,
        "columns": list(schema.columns),
        "train_rows": fitted.train_rows,
        "validation_rows": fitted.validation_rows,
        "validation_churn_rate": round(fitted.validation_churn_rate, 4),
        "target_precision": target_precision,
        "measured": {name: m.as_dict() for name, m in fitted.measured.items()},
        "alerts_of_chosen_model": alerts.as_dict(),
    }
    return fitted, summary
