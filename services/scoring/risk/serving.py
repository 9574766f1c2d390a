"""Live scoring with a fitted churn-risk model: probability to score and band, the `churn_risk`
hysteresis, and each score's explanation in words. Pure: no I/O.

The mapping (docs/churn-risk.md):
  * score = round(100 * (1 - p)), p the calibrated probability of churn within the horizon;
  * red at p >= the artifact's threshold (the one validation chose for the target precision),
    yellow (amber) at p >= AMBER_SHARE * threshold, green below;
  * `churn_risk` is raised when p reaches the threshold and cleared only once p falls below
    CLEAR_SHARE * threshold: a probability wavering around the threshold pages once.

A model scores each account at its daily ticks of event time (not per event): the features
then are a function of the account's entries before the tick, so a replay scores the same
moments with the same features and gets the same scores. The ticks of a batch are evaluated
together, in one `predict_proba` call across accounts; explanations only for the scores that
changed.

Contributions are how much each column moves p away from the typical account's:
  * logistic regression: coef * standardised value (log-odds), turned into p minus p with that
    term removed (the column at its training mean);
  * any other estimator: p(x) minus p(x with that column at its training median, the artifact's
    `reference`), every changed row's variants in one `predict_proba` call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import ThreadpoolController

from services.scoring.risk.artifact import Artifact
from services.scoring.risk.features import Snapshot
from services.scoring.risk.wording import words

AMBER_SHARE = 0.5  # yellow from half the red threshold's probability
CLEAR_SHARE = 0.8  # churn_risk clears below 80% of the threshold it was raised at
EXPLAINED = 3  # contributions put in words per change

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class LiveModel:
    """The active registry version as live scoring uses it."""

    version: int
    artifact: Artifact
    since: float  # the calibrate cut (epoch seconds): it scores event times at or after this only

    def governs(self, at: float) -> bool:
        return at >= self.since


def score_of(probability: float) -> float:
    return float(round(100 * (1 - probability)))


def band_of(probability: float, threshold: float) -> str:
    if probability >= threshold:
        return "red"
    if probability >= AMBER_SHARE * threshold:
        return "yellow"
    return "green"


def risk_holds(probability: float, threshold: float, held: bool) -> bool:
    """Whether churn_risk holds after this probability, given whether it held before."""
    return probability >= (CLEAR_SHARE * threshold if held else threshold)


# --- contributions ---------------------------------------------------------------------------


def _logistic_parts(estimator: Any) -> tuple[Matrix, Matrix, Matrix, float] | None:
    """(mean, scale, coef, intercept) of a StandardScaler + LogisticRegression pipeline, else None."""
    steps = getattr(estimator, "steps", None)
    if not steps or len(steps) != 2:
        return None
    scaler, regression = steps[0][1], steps[1][1]
    if not hasattr(scaler, "mean_") or not hasattr(regression, "coef_"):
        return None
    scale = np.asarray(scaler.scale_, dtype=float)
    return (
        np.asarray(scaler.mean_, dtype=float),
        np.where(scale == 0, 1.0, scale),
        np.asarray(regression.coef_[0], dtype=float),
        float(regression.intercept_[0]),
    )


def contributions(artifact: Artifact, rows: Matrix, probabilities: Matrix) -> Matrix:
    """Per row and column, p minus p with that column typical: positive raises the risk."""
    if not len(rows):
        return np.zeros((0, len(artifact.columns)))
    parts = _logistic_parts(artifact.estimator) if artifact.kind == "logistic_regression" else None
    if parts is not None:
        mean, scale, coef, intercept = parts
        terms = coef * (rows - mean) / scale  # coef * standardised value, in log-odds
        logit = terms.sum(axis=1, keepdims=True) + intercept
        without = 1 / (1 + np.exp(-(logit - terms)))
        return np.asarray(probabilities[:, None] - without, dtype=float)
    reference = np.asarray(artifact.reference, dtype=float)
    # A column already at its reference contributes nothing: only the others need a variant
    # (most of a row's event names and tickets sit at the typical 0).
    which, columns = np.nonzero(rows != reference)
    found = np.zeros(rows.shape)
    if len(which):
        variants = rows[which]
        variants[np.arange(len(which)), columns] = reference[columns]
        found[which, columns] = probabilities[which] - predict(artifact, variants)
    return found


def typical(artifact: Artifact) -> Matrix:
    """What an explanation compares a value with: the training median of each column."""
    return np.asarray(artifact.reference, dtype=float)


@dataclass(frozen=True)
class Explained:
    """A changed score's largest contributions: (column, contribution, words), largest first."""

    parts: list[tuple[str, float, str]]

    def lines(self) -> list[str]:
        return [w for _, _, w in self.parts]


def explain(
    artifact: Artifact, row: Sequence[float], contribution: Sequence[float], previous: Sequence[float] | None
) -> Explained:
    """The EXPLAINED columns moving p most, either way, in words."""
    reference = typical(artifact)
    order = sorted(range(len(row)), key=lambda j: (-abs(contribution[j]), j))[:EXPLAINED]
    return Explained(
        [
            (
                artifact.columns[j],
                float(contribution[j]),
                words(
                    artifact.columns[j],
                    float(row[j]),
                    float(reference[j]),
                    None if previous is None else float(previous[j]),
                    float(contribution[j]),
                ),
            )
            for j in order
        ]
    )


# --- one batch's model scores ---------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One requested moment, scored: its probability, score, band, and the row it came from."""

    at: float
    probability: float
    score: float
    band: str
    row: list[float]


_threads: ThreadpoolController | None = None


def predict(artifact: Artifact, rows: Matrix) -> Matrix:
    """`probability_of_rows` on this thread alone: scoring is one thread per process, and a
    gradient-boosted model's OpenMP threads spin against it on a small machine (measured: the
    same predictions at twice the CPU; docs/performance.md)."""
    global _threads
    if _threads is None:
        _threads = ThreadpoolController()
    with _threads.limit(limits=1, user_api="openmp"):
        return artifact.probability_of_rows(rows)


def score_all(live: LiveModel, snapshots: Sequence[Snapshot]) -> list[Scored]:
    """Every snapshot scored in one `predict_proba` call."""
    rows = live.artifact.rows(snapshots)
    probabilities = predict(live.artifact, rows)
    threshold = live.artifact.threshold
    return [
        Scored(s.at, float(p), score_of(float(p)), band_of(float(p), threshold), [float(v) for v in row])
        for s, p, row in zip(snapshots, probabilities, rows, strict=True)
    ]


def explain_all(
    live: LiveModel, scored: Sequence[Scored], previous: Sequence[Sequence[float] | None]
) -> list[Explained]:
    """The explanations of the scores that changed, their contributions in one pass."""
    if not scored:
        return []
    rows = np.asarray([s.row for s in scored], dtype=float)
    found = contributions(live.artifact, rows, np.asarray([s.probability for s in scored], dtype=float))
    return [
        explain(live.artifact, s.row, list(map(float, c)), p)
        for s, c, p in zip(scored, found, previous, strict=True)
    ]


# --- what an account keeps of its model scores ------------------------------------------------


@dataclass
class Record:
    """An account's latest model score, and the last one recorded as a change (history)."""

    version: int  # the registry version that scored it
    at: float  # the latest scored moment
    probability: float
    score: float
    band: str
    recorded_score: float  # as of the last recorded change
    recorded_band: str
    row: list[float]  # the feature row of the last recorded change (the "was" of the next)
    parts: list[tuple[str, float, str]]  # the last recorded change's explanation
    risk_on: bool  # churn_risk holds
    episode: int  # churn_risk episodes so far (the signal key's number)

    def encode(self) -> list[Any]:
        return [
            self.version, self.at, self.probability, self.score, self.band, self.recorded_score,
            self.recorded_band, self.row, [list(p) for p in self.parts], self.risk_on, self.episode,
        ]

    @classmethod
    def after(
        cls, last: Record | None, scored: Scored, found: Step, version: int, explained: Explained | None
    ) -> Record:
        """The record once `scored` is applied: a recorded change takes the new score, band, row and
        explanation; otherwise those of the last recorded change are kept."""
        keep = last if last is not None and not found.changed else None
        explained_parts = explained.parts if explained is not None else last.parts if last is not None else []
        episode = (last.episode if last is not None else 0) + (1 if found.toggled and found.risk_on else 0)
        return cls(
            version, scored.at, scored.probability, scored.score, scored.band,
            keep.recorded_score if keep is not None else scored.score,
            keep.recorded_band if keep is not None else scored.band,
            keep.row if keep is not None else kept_row(scored.row),
            keep.parts if keep is not None else explained_parts,
            found.risk_on, episode,
        )

    @classmethod
    def decode(cls, raw: list[Any]) -> Record:
        (version, at, probability, score, band, recorded_score, recorded_band, row, parts, risk_on,
         episode) = raw
        return cls(
            int(version), float(at), float(probability), float(score), str(band), float(recorded_score),
            str(recorded_band), [float(v) for v in row], [(str(c), float(v), str(w)) for c, v, w in parts],
            bool(risk_on), int(episode),
        )


def kept_row(row: Sequence[float]) -> list[float]:
    """A feature row as an account's state keeps it (for the next change's "was"): 4 decimals,
    half the bytes of full floats, far finer than the words show."""
    return [round(float(v), 4) for v in row]


@dataclass(frozen=True)
class Step:
    changed: bool  # a change to record: another model, the band, or the score by min_change or more
    risk_on: bool
    toggled: bool  # churn_risk raised or cleared by this score


def step(last: Record | None, scored: Scored, version: int, threshold: float, min_change: float) -> Step:
    held = last.risk_on if last is not None else False
    risk = risk_holds(scored.probability, threshold, held)
    changed = (
        last is None
        or last.version != version
        or abs(scored.score - last.recorded_score) >= min_change
        or scored.band != last.recorded_band
    )
    return Step(changed, risk, risk != held)
