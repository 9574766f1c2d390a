"""Combining measures into one explained score and a band. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from services.scoring.measures import MEASURES, Measurement
from services.scoring.state import AccountState
from shared.events import Band, Factor

WEIGHTS = {"usage_volume": 30.0, "recency": 25.0, "nps": 25.0, "open_tickets": 20.0}
RED_BELOW = 40.0
GREEN_FROM = 70.0


@dataclass(frozen=True)
class Health:
    score: float
    band: Band
    factors: list[Factor]


def band_for(score: float) -> Band:
    if score < RED_BELOW:
        return Band.RED
    return Band.GREEN if score >= GREEN_FROM else Band.YELLOW


def combine(measurements: list[Measurement]) -> Health | None:
    """Weighted mean of the measures that have data, weights renormalised to 100%.

    None when no measure has data: an account we know nothing about has no score.
    """
    present = [m for m in measurements if m.value is not None]
    total = sum(WEIGHTS[m.measure] for m in present)
    if not present or total <= 0:
        return None
    factors = []
    exact_score = 0.0
    for m in measurements:
        weight = WEIGHTS[m.measure] / total if m.value is not None else 0.0
        contribution = weight * m.value if m.value is not None else 0.0
        exact_score += contribution
        factors.append(Factor(measure=m.measure, value=m.value, weight=round(weight, 4),
                              contribution=round(contribution, 2), detail=m.detail))
    # From the exact contributions: summing the rounded ones can move the score by 0.1,
    # and across a band threshold.
    score = round(exact_score, 1)
    # What pulls the score down most comes first; measures without data come last.
    factors.sort(key=lambda f: (f.value is None, -(f.weight * (100 - (f.value or 0)))))
    return Health(score=score, band=band_for(score), factors=factors)


def assess(state: AccountState) -> Health | None:
    return combine([measure(state) for measure in MEASURES])
