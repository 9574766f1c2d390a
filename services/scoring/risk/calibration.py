"""Fitting churn risk on labelled snapshots, with a time-ordered validation. No I/O.

The split is by time, never at random: the model is fitted on the earlier snapshots and judged
on the later ones, and a training snapshot whose horizon reaches into the validation period is
dropped (its label would tell the model about the period it is judged on). Candidates are a
regularised logistic regression on standardised features and a gradient-boosted model. Their
settings (regularisation strength; depth, leaves and learning rate) and the family are chosen
on an *inner* time split of the training snapshots alone, so the validation rows judge one
model per family once and the figures reported are not the best of many tries on them. The
same validation rows also score the baselines a user would otherwise trust: the current
scorecard and a naive count of recent activity.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from services.scoring.model import DAY

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class Observation:
    """One labelled snapshot: the account at `at`, its features, and what the baselines said."""

    account_id: str
    at: float
    row: Sequence[float] | Matrix  # a matrix row (a view) keeps a large fit compact
    label: int
    scorecard_score: float | None  # the health score shown then (100 healthy), None if none yet
    activity_28d: float  # events in the 28 days before `at`: the naive baseline
    counts_by_name: Sequence[float] = ()  # raw 28-day counts per event-name column


@dataclass
class Measured:
    """How well one risk ranking did on the validation rows (risk: higher is likelier to churn)."""

    roc_auc: float
    pr_auc: float
    brier: float | None  # only for a probability
    threshold: float | None = None
    precision: float | None = None
    recall: float | None = None
    # A 95% interval of roc_auc, by resampling whole accounts (an account's weekly rows are not
    # independent): with a few dozen churns two rankings' AUCs can differ by chance alone.
    roc_auc_low: float | None = None
    roc_auc_high: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Fit:
    chosen: str
    estimator: Any
    columns: tuple[str, ...]
    train_rows: int
    validation_rows: int
    validation_from: float
    validation_churn_rate: float
    measured: dict[str, Measured] = field(default_factory=dict)  # candidates and baselines
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # per family, as chosen
    inner_roc_auc: dict[str, float] = field(default_factory=dict)  # per family, on the inner split

    def risk(self, rows: Sequence[Sequence[float] | Matrix]) -> NDArray[np.float64]:
        return np.asarray(self.estimator.predict_proba(np.asarray(rows, dtype=float))[:, 1], dtype=float)


class TooFewOutcomes(ValueError):
    """Not enough labelled outcomes on one side of the split to fit or to judge a fit."""


def split_time(snapshot_times: Iterable[float], validation_share: float) -> float:
    """The snapshot time from which rows validate: the latest `validation_share` of snapshot times."""
    times = sorted(set(snapshot_times))
    if len(times) < 2:
        raise TooFewOutcomes(f"{len(times)} distinct snapshot time(s): a time split needs two or more")
    return times[min(len(times) - 1, max(1, round(len(times) * (1 - validation_share))))]


def threshold_for_precision(risk: Matrix, labels: Matrix, target: float) -> tuple[float, float, float]:
    """The lowest risk threshold whose alerts are at least `target` precise: (threshold, precision,
    recall); the most precise threshold found if none reaches the target."""
    order = np.argsort(-risk, kind="stable")
    ranked, hits = risk[order], labels[order]
    cumulative = np.cumsum(hits)
    alerted = np.arange(1, len(ranked) + 1)
    precision = cumulative / alerted
    positives = max(float(hits.sum()), 1.0)
    # only positions where the threshold can fall (the last of a run of equal risks)
    last_of_tie = np.append(ranked[1:] != ranked[:-1], True)
    good = np.flatnonzero(last_of_tie & (precision >= target) & (alerted >= 5))
    at = int(good[-1]) if len(good) else int(np.flatnonzero(last_of_tie)[np.argmax(precision[last_of_tie])])
    return float(ranked[at]), float(precision[at]), float(cumulative[at] / positives)


BOOTSTRAP_DRAWS = 200
BOOTSTRAP_MAX_ROWS = 100_000  # beyond, the interval is narrower than the figures' rounding shows


def auc_interval(
    risk: Matrix, labels: Matrix, accounts: Sequence[str], draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles of roc_auc over `draws` resamples of the accounts (with
    replacement, each drawn account's rows all taken); None for too many rows or too few churns."""
    if len(labels) > BOOTSTRAP_MAX_ROWS:
        return None
    names, index = np.unique(np.asarray(accounts), return_inverse=True)
    order = np.argsort(index, kind="stable")
    rows_of = np.split(order, np.cumsum(np.bincount(index, minlength=len(names)))[:-1])
    rng = np.random.default_rng(seed)
    found: list[float] = []
    for _ in range(draws):
        picked = np.concatenate([rows_of[i] for i in rng.integers(0, len(names), size=len(names))])
        drawn = labels[picked]
        if 0 < drawn.sum() < len(drawn):
            found.append(float(roc_auc_score(drawn, risk[picked])))
    if len(found) < draws // 2:
        return None
    low, high = np.percentile(found, [2.5, 97.5])
    return float(low), float(high)


def measure(
    risk: Matrix,
    labels: Matrix,
    probability: bool,
    target_precision: float,
    accounts: Sequence[str] | None = None,
) -> Measured:
    threshold, precision, recall = threshold_for_precision(risk, labels, target_precision)
    interval = auc_interval(risk, labels, accounts) if accounts is not None else None
    return Measured(
        roc_auc=float(roc_auc_score(labels, risk)),
        pr_auc=float(average_precision_score(labels, risk)),
        brier=float(brier_score_loss(labels, risk)) if probability else None,
        threshold=threshold,
        precision=precision,
        recall=recall,
        roc_auc_low=interval[0] if interval is not None else None,
        roc_auc_high=interval[1] if interval is not None else None,
    )


# Per family, the settings tried on the inner split; the first is the default when the inner
# split has too few churns to choose.
SETTINGS: dict[str, tuple[dict[str, Any], ...]] = {
    "logistic_regression": tuple({"C": c} for c in (0.3, 0.01, 0.03, 0.1, 1.0)),
    "gradient_boosting": (
        {"learning_rate": 0.05, "max_leaf_nodes": 15, "max_depth": None, "min_samples_leaf": 40},
        {"learning_rate": 0.05, "max_leaf_nodes": 4, "max_depth": 2, "min_samples_leaf": 40},
        {"learning_rate": 0.05, "max_leaf_nodes": 8, "max_depth": 3, "min_samples_leaf": 80},
        {"learning_rate": 0.03, "max_leaf_nodes": 8, "max_depth": 3, "min_samples_leaf": 40},
    ),
}
INNER_SHARE = 0.3  # the later share of the training snapshot times that judges the settings
# The settings are chosen on at most this many training rows (whole accounts, drawn at random
# with the seed): a large base's ranking of settings is as clear from a sample of it, and the
# inner split's fits then cost a bounded share of the final fit's time.
INNER_MAX_ROWS = 300_000
# Threads per fit. One: on two cores beside other work, OpenMP's spinning threads burnt 8 times
# the CPU of a single-threaded fit of the same gradient-boosted model (bench.calibrate_fit_time).
FIT_THREADS = 1


def make_estimator(family: str, settings: dict[str, Any], seed: int) -> Any:
    """An unfitted candidate of `family` (a key of SETTINGS) with `settings`."""
    if family == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(C=settings["C"], max_iter=2_000))
    return HistGradientBoostingClassifier(
        max_iter=200, l2_regularization=1.0, random_state=seed, **settings
    )


def _auc(estimator: Any, x: Matrix, y: Matrix) -> float:
    return float(roc_auc_score(y, estimator.predict_proba(x)[:, 1]))


def _choose(
    train: Sequence[Observation], horizon_days: float, min_churns: int, seed: int
) -> tuple[dict[str, dict[str, Any]], dict[str, float]]:
    """Per family the settings with the best ROC AUC on the inner split of `train` (fitted on its
    earlier snapshots, judged on its later ones, the same gap kept), and that AUC."""
    chosen = {family: tries[0] for family, tries in SETTINGS.items()}
    try:
        inner_from = split_time((o.at for o in train), INNER_SHARE)
    except TooFewOutcomes:
        return chosen, {}
    if len(train) > INNER_MAX_ROWS:
        accounts = sorted({o.account_id for o in train})
        keep = round(len(accounts) * INNER_MAX_ROWS / len(train))
        drawn = set(np.random.default_rng(seed).choice(len(accounts), size=keep, replace=False).tolist())
        sampled = {a for i, a in enumerate(accounts) if i in drawn}
        train = [o for o in train if o.account_id in sampled]
    fit_rows = [o for o in train if o.at + horizon_days * DAY <= inner_from]
    judge_rows = [o for o in train if o.at >= inner_from]
    for rows in (fit_rows, judge_rows):
        churns = sum(o.label for o in rows)
        if churns < max(min_churns // 4, 3) or churns == len(rows):
            return chosen, {}
    x_fit = np.asarray([o.row for o in fit_rows], dtype=float)
    y_fit = np.asarray([o.label for o in fit_rows], dtype=float)
    x_judge = np.asarray([o.row for o in judge_rows], dtype=float)
    y_judge = np.asarray([o.label for o in judge_rows], dtype=float)
    best: dict[str, float] = {}
    for family, tries in SETTINGS.items():
        for settings in tries:
            auc = _auc(make_estimator(family, settings, seed).fit(x_fit, y_fit), x_judge, y_judge)
            if family not in best or auc > best[family]:
                best[family], chosen[family] = auc, settings
    return chosen, best


def fit(
    observations: Sequence[Observation],
    columns: tuple[str, ...],
    horizon_days: float,
    *,
    validation_share: float = 0.4,
    target_precision: float = 0.7,
    min_churns: int = 20,
    seed: int = 0,
    threads: int = FIT_THREADS,
) -> Fit:
    """Fit every candidate on the earlier snapshots and measure all on the later ones."""
    with threadpool_limits(limits=threads):
        return _fit(observations, columns, horizon_days, validation_share, target_precision, min_churns, seed)


def _fit(
    observations: Sequence[Observation],
    columns: tuple[str, ...],
    horizon_days: float,
    validation_share: float,
    target_precision: float,
    min_churns: int,
    seed: int,
) -> Fit:
    validation_from = split_time((o.at for o in observations), validation_share)
    train = [o for o in observations if o.at + horizon_days * DAY <= validation_from]
    validate = [o for o in observations if o.at >= validation_from]
    for side, rows in (("training", train), ("validation", validate)):
        churns = sum(o.label for o in rows)
        if churns < min_churns or churns == len(rows):
            raise TooFewOutcomes(
                f"{side}: {churns} churned of {len(rows)} labelled snapshots "
                f"(at least {min_churns} churns and one renewal needed)"
            )
    x_train = np.asarray([o.row for o in train], dtype=float)
    y_train = np.asarray([o.label for o in train], dtype=float)
    x_valid = np.asarray([o.row for o in validate], dtype=float)
    y_valid = np.asarray([o.label for o in validate], dtype=float)

    accounts = [o.account_id for o in validate]
    settings, inner = _choose(train, horizon_days, min_churns, seed)
    measured: dict[str, Measured] = {}
    fitted: dict[str, Any] = {}
    for name in SETTINGS:
        estimator = make_estimator(name, settings[name], seed).fit(x_train, y_train)
        fitted[name] = estimator
        measured[name] = measure(
            estimator.predict_proba(x_valid)[:, 1], y_valid, True, target_precision, accounts
        )
    # The family too is chosen on the inner split; without one, logistic regression (the
    # steadier of the two on a few dozen churns).
    chosen = max(inner, key=lambda n: inner[n]) if inner else "logistic_regression"

    scored = [(o.scorecard_score if o.scorecard_score is not None else 100.0) for o in validate]
    measured["scorecard"] = measure(-np.asarray(scored), y_valid, False, target_precision, accounts)
    measured["naive_activity_28d"] = measure(
        -np.asarray([o.activity_28d for o in validate], dtype=float), y_valid, False, target_precision,
        accounts,
    )
    if validate[0].counts_by_name:
        raw = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2_000))
        raw.fit(np.asarray([o.counts_by_name for o in train], dtype=float), y_train)
        risk = raw.predict_proba(np.asarray([o.counts_by_name for o in validate], dtype=float))[:, 1]
        measured["logistic_raw_counts"] = measure(risk, y_valid, True, target_precision, accounts)
    return Fit(
        chosen=chosen,
        estimator=fitted[chosen],
        columns=columns,
        train_rows=len(train),
        validation_rows=len(validate),
        validation_from=validation_from,
        validation_churn_rate=float(y_valid.mean()),
        measured=measured,
        settings=settings,
        inner_roc_auc={k: round(v, 4) for k, v in inner.items()},
    )
