"""The benchmark arithmetic on examples small enough to compute by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from bench.quality_metrics import (
    AccountOutcome,
    ScorePoint,
    alert_is_right,
    lead_times,
    median,
    percentile,
    precision,
    roc_auc,
    score_at,
    weekly_observations,
)


def test_auc_of_a_perfect_ranking_is_one_and_of_a_reversed_one_zero() -> None:
    assert roc_auc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert roc_auc([0.1, 0.2, 0.8, 0.9], [True, True, False, False]) == 0.0


def test_auc_counts_pairs_and_ties_count_half() -> None:
    # positives 0.8, 0.4; negatives 0.6, 0.4, 0.2. Pairs (pos, neg):
    # 0.8 beats all three = 3; 0.4 loses to 0.6 (0), ties 0.4 (0.5), beats 0.2 (1) = 1.5.
    # (3 + 1.5) / (2 * 3) = 0.75
    assert roc_auc([0.8, 0.6, 0.4, 0.4, 0.2], [True, False, True, False, False]) == pytest.approx(0.75)


def test_auc_of_all_ties_is_one_half() -> None:
    assert roc_auc([5.0, 5.0, 5.0], [True, False, False]) == 0.5


def test_auc_needs_both_classes() -> None:
    assert roc_auc([0.3, 0.4], [True, True]) is None
    assert roc_auc([], []) is None
    with pytest.raises(ValueError):
        roc_auc([0.1], [True, False])


def test_precision_median_and_percentiles() -> None:
    assert precision([True, False, True, True]) == 0.75
    assert precision([]) is None
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 3.0, 2.0]) == 2.5
    assert median([]) is None
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([], 50) is None


START = date(2026, 1, 1)


def at(day: int, hour: int = 12) -> datetime:
    return datetime(2026, 1, 1, hour, tzinfo=UTC) + timedelta(days=day)


def test_score_at_takes_the_latest_score_not_after_the_moment() -> None:
    history = [ScorePoint(at(0), 80.0), ScorePoint(at(5), 60.0), ScorePoint(at(9), 30.0)]
    assert score_at(history, at(-1)) is None
    assert score_at(history, at(5)) == 60.0
    assert score_at(history, at(8)) == 60.0
    assert score_at(history, at(20)) == 30.0


def test_weekly_observations_label_churn_within_the_horizon() -> None:
    outcomes = {
        "churns-day-40": AccountOutcome(START + timedelta(days=40), [], {}),
        "stays": AccountOutcome(None, [], {}),
        "no-score": AccountOutcome(None, [], {}),
    }
    histories = {"churns-day-40": [ScorePoint(at(0), 50.0), ScorePoint(at(20), 20.0)],
                 "stays": [ScorePoint(at(0), 90.0)]}
    observations = weekly_observations(histories, outcomes, START, START + timedelta(days=69),
                                       warm_up_days=7, every_days=7, horizon_days=30)
    # Observation days 7, 14, ..., 39 (39 + 30 = 69 is the last that fits); the churner is
    # observed until day 35 (it churns on 40), positive from day 10 on (40 - 30).
    days = sorted({(o.day - START).days for o in observations})
    assert days == [7, 14, 21, 28, 35]
    churner = {(o.day - START).days: o for o in observations if o.account_id == "churns-day-40"}
    assert [churner[d].churns_within_horizon for d in (7, 14, 21, 28, 35)] == [False, True, True, True, True]
    assert churner[14].score == 50.0 and churner[21].score == 20.0
    assert all(not o.churns_within_horizon for o in observations if o.account_id == "stays")
    assert not any(o.account_id == "no-score" for o in observations)


def test_an_alert_is_right_on_churn_within_90_days_a_decline_or_low_health() -> None:
    churner = AccountOutcome(START + timedelta(days=100), [], {})
    assert alert_is_right(churner, START + timedelta(days=10))  # 90 days before churn
    assert not alert_is_right(churner, START + timedelta(days=9))  # 91 days before
    decliner = AccountOutcome(None, [(START + timedelta(days=30), START + timedelta(days=50))], {})
    assert alert_is_right(decliner, START + timedelta(days=23))  # a week before the start
    assert not alert_is_right(decliner, START + timedelta(days=22))
    assert alert_is_right(decliner, START + timedelta(days=64))  # two weeks after the end
    assert not alert_is_right(decliner, START + timedelta(days=65))
    ongoing = AccountOutcome(None, [(START + timedelta(days=30), None)], {})
    assert alert_is_right(ongoing, START + timedelta(days=300))
    unhealthy = AccountOutcome(None, [], {START: 0.3, START + timedelta(days=1): 0.8})
    assert alert_is_right(unhealthy, START)
    assert not alert_is_right(unhealthy, START + timedelta(days=1))


def test_lead_time_runs_from_the_first_alert_in_the_90_days_before_churn() -> None:
    outcomes = {
        "a": AccountOutcome(START + timedelta(days=100), [], {}),
        "b": AccountOutcome(START + timedelta(days=100), [], {}),
        "c": AccountOutcome(None, [], {}),
    }
    alerts = {
        # day 5 is 95 days before churn: about something else; day 40 is the first in the window
        "a": [START + timedelta(days=5), START + timedelta(days=70), START + timedelta(days=40)],
        "b": [START + timedelta(days=101)],  # after churn: not a lead
        "c": [START + timedelta(days=50)],  # never churned
    }
    assert lead_times(alerts, outcomes) == {"a": 60}
