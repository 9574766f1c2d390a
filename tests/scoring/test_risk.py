"""Churn-risk pieces that need no broker: labels, features of a folded account, the fit's rules."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest

from services.scoring.model import DAY, MAX_USAGE_NAMES, Competitors, Model
from services.scoring.risk.backtest import Moment, fold_account, judge_alerts, weekly
from services.scoring.risk.calibration import TooFewOutcomes, threshold_for_precision
from services.scoring.risk.evaluation import evaluate
from services.scoring.risk.features import FIXED, FeatureSchema, Snapshot
from services.scoring.risk.labels import churn_label
from shared.events import Envelope, EventType
from tests.scoring.events import DEFAULT_CARD, T0, envelope, group, usage

START = T0.timestamp()


def test_labels_wait_for_the_horizon_and_ignore_what_follows_churn() -> None:
    end = START + 100 * DAY
    assert churn_label(START, START + 10 * DAY, end, 30) == 1
    assert churn_label(START, START + 40 * DAY, end, 30) == 0  # churned, but after the horizon
    assert churn_label(START, None, end, 30) == 0
    assert churn_label(end - 10 * DAY, None, end, 30) is None  # horizon not passed yet: censored
    assert churn_label(end - 10 * DAY, end - 5 * DAY, end, 30) == 1  # churn seen within it
    assert churn_label(START + 20 * DAY, START + 10 * DAY, end, 30) is None  # already gone


def test_a_model_stored_before_usage_by_name_existed_decodes_with_it_empty() -> None:
    old = Model().encode()[:-1]
    assert Model.decode(old).usage_by_name == {}
    with pytest.raises(ValueError, match="newer"):
        Model.decode([*Model().encode(), None])


def account_events(account: str, days: int, names: list[str], churn_day: int | None) -> list[Envelope]:
    events = [group(f"{account}-g", account, account.title(), at=T0, plan="pro", mrr=100)]
    for day in range(days if churn_day is None else churn_day):
        for i, name in enumerate(names):
            at = T0 + timedelta(days=day, hours=i)
            events.append(usage(f"{account}-{day}-{i}", account, at, name=name))
    if churn_day is not None:
        events.append(
            envelope(EventType.TRACK, f"{account}-churn", account, T0 + timedelta(days=churn_day),
                     {"event": "account churned"})
        )
    return events


def test_weekly_moments_stop_when_the_account_churns_and_count_what_it_did() -> None:
    moments = weekly(START, START + 70 * DAY)
    assert moments[0] == pytest.approx(-(-START // DAY) * DAY + 7 * DAY)
    folded = list(
        fold_account("acme", account_events("acme", 70, ["Report Built", "Unfriend"], churn_day=30),
                     moments, DEFAULT_CARD, Competitors([]))
    )
    assert folded and all(m.snapshot.at < START + 31 * DAY for m in folded)
    assert {m.churned_at for m in folded} == {START + 30 * DAY}
    last = folded[-1]
    assert set(last.snapshot.by_name) == {"report built", "unfriend"}
    assert last.activity_28d == 56  # two events a day for the 28 days before it
    assert len(last.snapshot.fixed) == len(FIXED)


def test_usage_by_name_keeps_only_the_busiest_names() -> None:
    names = [f"feature {i}" for i in range(MAX_USAGE_NAMES + 8)]
    events = account_events("busy", 3, names, churn_day=None)
    [moment] = fold_account("busy", events, [START + 3 * DAY], DEFAULT_CARD, Competitors([]))
    assert len(moment.snapshot.by_name) == MAX_USAGE_NAMES


def test_the_schema_pools_unknown_names_into_other() -> None:
    schema = FeatureSchema(1, ("login",))
    by_name = {"login": np.log1p(3.0), "x": np.log1p(1.0), "y": np.log1p(2.0)}
    snap = Snapshot(0.0, tuple(0.0 for _ in FIXED), by_name)
    row = schema.row(snap)
    # fixed, login, other, login's month against its quarter, login's share of the month
    assert len(row) == len(schema.columns) == len(FIXED) + 4
    login, other, _, share = row[len(FIXED):]
    assert login == pytest.approx(np.log1p(3.0)) and other == pytest.approx(np.log1p(3.0))
    assert share == pytest.approx(3.0 / 6.0)


def test_the_threshold_is_the_lowest_that_keeps_the_target_precision() -> None:
    risk = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    labels = np.array([1, 1, 1, 1, 0, 1, 0, 0, 0, 0], dtype=float)
    threshold, precision, recall = threshold_for_precision(risk, labels, 0.8)
    assert threshold == 0.4 and precision == pytest.approx(5 / 6) and recall == 1.0


def test_an_alert_counts_once_per_episode_and_lead_time_is_measured_to_the_churn() -> None:
    def moment(account: str, day: float, churned: float | None) -> Moment:
        return Moment(account, Snapshot(START + day * DAY, (), {}), None, 0, churned)

    churner = START + 40 * DAY
    rows = [(moment("a", d, churner), r) for d, r in ((0, 0.2), (7, 0.9), (14, 0.95), (21, 0.9))]
    rows += [(moment("b", d, None), r) for d, r in ((0, 0.9), (7, 0.1), (14, 0.9))]
    outcome = judge_alerts(rows, 0.8, START, START + 120 * DAY)
    assert (outcome.alerts, outcome.followed_by_churn) == (3, 1)
    assert (outcome.churners, outcome.churners_alerted_early, outcome.median_lead_days) == (1, 1, 33.0)


def test_a_calibration_with_too_few_churns_says_so_with_the_counts() -> None:
    moments = weekly(START, START + 120 * DAY)
    folded = [
        m
        for i in range(6)
        for m in fold_account(
            f"a{i}", account_events(f"a{i}", 120, ["Login"], churn_day=60 if i == 0 else None),
            moments, DEFAULT_CARD, Competitors([]),
        )
    ]
    with pytest.raises(TooFewOutcomes, match=r"training: \d+ churned of \d+ labelled snapshots"):
        evaluate(folded, START + 120 * DAY, min_churns=5)


def test_the_model_learns_a_behaviour_that_comes_before_churn_and_beats_the_activity_count() -> None:
    """Churners do as much as everyone, but complain first: only what they do tells them apart."""
    rng = random.Random(7)
    days = 180
    moments = weekly(START, START + days * DAY)
    folded: list[Moment] = []
    for i in range(120):
        churn_day = rng.randrange(40, days - 10) if i % 3 == 0 else None
        events = [group(f"c{i}-g", f"c{i}", f"C{i}", at=T0, plan="pro", mrr=100)]
        for day in range(churn_day if churn_day is not None else days):
            for n in range(rng.randrange(1, 6)):
                unhappy = churn_day is not None and churn_day - day < 35 and rng.random() < 0.5
                name = "Complaint Filed" if unhappy else rng.choice(["Login", "Report Built", "Export"])
                events.append(usage(f"c{i}-{day}-{n}", f"c{i}", T0 + timedelta(days=day, hours=n), name=name))
        if churn_day is not None:
            events.append(envelope(EventType.TRACK, f"c{i}-x", f"c{i}", T0 + timedelta(days=churn_day),
                                   {"event": "account churned"}))
        folded.extend(fold_account(f"c{i}", events, moments, DEFAULT_CARD, Competitors([])))
    _, summary = evaluate(folded, START + days * DAY, min_churns=5)
    measured = summary["measured"]
    chosen = measured[summary["chosen"]]["roc_auc"]
    assert chosen > 0.9
    assert chosen > measured["naive_activity_28d"]["roc_auc"] + 0.2
