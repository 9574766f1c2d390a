"""Combining measures into one score, a band with hysteresis, and factors in words. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.scoring import signals
from services.scoring.config import Bands, Scorecard, Segment, SegmentRule
from services.scoring.measures import MEASURES, describe
from services.scoring.model import DAY, Model, expire
from shared.account_facts import AccountFacts
from shared.events import Factor

BAND_RANK = {"red": 0, "yellow": 1, "green": 2}

Plan = list[tuple[str, Any, Any, float]]  # (measure, function, parameters, weight)
_PLANS: dict[int, tuple[Plan, Segment]] = {}


def plan_of(segment: Segment) -> Plan:
    """The segment's measures in scorecard order (cached: the scorecard is immutable)."""
    cached = _PLANS.get(id(segment))
    if cached is None or cached[1] is not segment:  # the entry keeps its segment alive
        cached = _PLANS[id(segment)] = (
            [(name, MEASURES[name], params, params.weight) for name, params in segment.measures.enabled()],
            segment,
        )
    return cached[0]


def matches(rule: SegmentRule, facts: AccountFacts) -> bool:
    if rule.plans is not None and (
        facts.plan is None or facts.plan.lower() not in {p.lower() for p in rule.plans}
    ):
        return False
    if rule.lifecycle_stages is not None and facts.lifecycle_stage not in rule.lifecycle_stages:
        return False
    arr = facts.arr
    if rule.min_arr is not None and (arr is None or arr < rule.min_arr):
        return False
    return rule.max_arr is None or (arr is not None and arr < rule.max_arr)


def segment_for(facts: AccountFacts, card: Scorecard) -> Segment:
    for segment in card.segments:
        if matches(segment.when, facts):
            return segment
    return card.segments[-1]


def raw_band(score: float, bands: Bands) -> str:
    if score < bands.red_below:
        return "red"
    return "green" if score >= bands.green_from else "yellow"


def band_after(previous: str | None, score: float, bands: Bands) -> str:
    """Worsening takes effect at the threshold; improving needs `hysteresis` points past it,
    so an account hovering around 40 or 70 does not flap."""
    band = raw_band(score, bands)
    if previous is None or BAND_RANK[band] <= BAND_RANK[previous]:
        return band
    if score >= bands.green_from + bands.hysteresis:
        return "green"
    if previous == "red" and score >= bands.red_below + bands.hysteresis:
        return "yellow"
    return previous


def effective(model: Model, card: Scorecard) -> tuple[float | None, str | None]:
    """The score and band shown: a CSM's override if there is one, else the computed ones."""
    override = model.override
    if override is not None:
        kind, value = override[1], override[2]
        if kind == "score":
            return float(value), raw_band(float(value), card.bands)
        if kind == "band":
            return model.score, str(value)
    return model.score, model.band


def evaluate(model: Model, card: Scorecard, segment: Segment | None = None) -> None:
    """Re-score the model at its clock and walk the path one step: band, peaks, signal episodes.

    `segment` is the account's, when the caller has already looked it up for these facts."""
    now = model.clock
    if now is None:
        return
    expire(model, card)
    before_band = effective(model, card)[1]
    if segment is None:
        segment = segment_for(model.facts, card)
    values: list[float | None] = []
    total = weighted = 0.0
    for _, function, params, weight in plan_of(segment):
        value = function(model, params, card, now)[0]
        values.append(value)
        if value is not None:
            total += weight
            weighted += weight * value
    model.segment = segment.name
    # Stored to a tenth (the factors show no more); the score uses the exact values.
    model.values = [None if v is None else round(v, 1) for v in values]
    if total > 0:
        # From the exact weighted sum: adding rounded contributions could cross a band.
        model.score = round(weighted / total, 1)
        model.band = band_after(model.band, model.score, card.bands)
    else:
        model.score = model.band = None
    score, band = effective(model, card)
    if score is not None:
        record_peak(model, int(now // DAY), score, int(card.signals.score_drop.within_days))
    signals.update_conditions(model, card, before_band, score, band)


def record_peak(model: Model, day: int, score: float, keep_days: int) -> None:
    """Daily highest shown scores, stored compactly: [first day, score that day, the next day's, ...]
    (None for a day without one), the last `keep_days` days only."""
    peaks = model.peaks
    if not peaks:
        model.peaks = [day, score]
        return
    first = int(peaks[0] or 0)
    if day < first:  # a best-effort late step: keep it in the day it belongs to if it is kept
        return
    index = day - first + 1
    if index < len(peaks):
        current = peaks[index]
        peaks[index] = score if current is None else max(current, score)
    else:
        peaks.extend([None] * (index - len(peaks)))
        peaks.append(score)
    drop = max(0, day - keep_days - first)
    if drop:
        model.peaks = [first + drop, *peaks[1 + drop:]]



@dataclass(frozen=True)
class Health:
    """An account's health as shown: effective score and band, and what is underneath."""

    score: float
    band: str
    computed_score: float
    computed_band: str
    segment: str
    factors: list[Factor]
    override: list[Any] | None


def weights(model: Model, card: Scorecard) -> list[tuple[str, float | None, float]]:
    """(measure, value, renormalised weight) in scorecard order."""
    plan = plan_of(card.segment_named(model.segment or ""))
    total = sum(w for (_, _, _, w), v in zip(plan, model.values, strict=False) if v is not None)
    return [
        (name, value, (w / total if value is not None and total > 0 else 0.0))
        for (name, _, _, w), value in zip(plan, model.values, strict=False)
    ]


def top_measure(model: Model, card: Scorecard) -> str | None:
    """The measure pulling the score down most."""
    best, pull = None, -1.0
    for name, value, weight in weights(model, card):
        if value is not None and weight * (100 - value) > pull:
            best, pull = name, weight * (100 - value)
    return best


def factors(model: Model, card: Scorecard) -> list[Factor]:
    """Every measure of the segment with its part in the score, worst first, in plain words."""
    now = model.clock
    assert now is not None
    plan = plan_of(card.segment_named(model.segment or ""))
    result = []
    # Values and weights are those of the last evaluation (the score's own); the words are
    # read now, a few seconds of usage later at most.
    for (name, function, params, _), (_, value, weight) in zip(plan, weights(model, card), strict=True):
        reading = function(model, params, card, now)[1]
        result.append(
            Factor(
                measure=name,
                value=None if value is None else round(value, 1),
                weight=round(weight, 4),
                contribution=round(weight * value, 2) if value is not None else 0.0,
                detail=describe(name, reading),
            )
        )
    result.sort(key=lambda f: (f.value is None, -(f.weight * (100 - (f.value or 0)))))
    return result


def health(model: Model, card: Scorecard) -> Health | None:
    if model.score is None or model.band is None:
        return None
    score, band = effective(model, card)
    assert score is not None and band is not None
    return Health(
        score=score,
        band=band,
        computed_score=model.score,
        computed_band=model.band,
        segment=model.segment or card.segments[-1].name,
        factors=factors(model, card),
        override=model.override,
    )
