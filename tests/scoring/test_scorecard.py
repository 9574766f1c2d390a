"""Combining measures: renormalised weights, the exact score, bands with hysteresis, segments."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.scoring.config import Bands, parse_scorecard
from services.scoring.model import Competitors, UnusableEvent, to_entry
from services.scoring.scorecard import band_after, health, raw_band, segment_for
from shared.account_facts import AccountFacts, LifecycleStage
from shared.events import EventType
from tests.scoring.events import DEFAULT_CARD, T0, envelope, nps, run, ticket, traits, usage

CARD = parse_scorecard("""
segments:
  - name: everyone
    measures:
      recency: {weight: 25}
      nps: {weight: 25}
      open_tickets: {weight: 20}
      usage_trend: {weight: 30}
""")


def test_missing_measures_are_left_out_and_weights_renormalised() -> None:
    shown = health(run([usage("u1", "a", T0), nps("n", "a", "r", 3, T0)], card=CARD).live, CARD)
    assert shown is not None
    by_measure = {f.measure: f for f in shown.factors}
    assert by_measure["usage_trend"].value is None and by_measure["usage_trend"].weight == 0
    assert by_measure["open_tickets"].detail == "no support tickets seen yet: left out"
    assert by_measure["recency"].weight == pytest.approx(0.5)
    # (25 * 100 + 25 * 15) / 50 = 57.5
    assert shown.score == 57.5
    assert shown.band == "yellow"
    # What pulls the score down most comes first; measures without data come last.
    assert [f.measure for f in shown.factors] == ["nps", "recency", "usage_trend", "open_tickets"]
    assert run([], card=CARD).live.score is None


def test_the_score_is_the_exact_weighted_sum_rounded_once() -> None:
    events = [
        usage("u1", "a", T0),
        nps("n", "a", "r", 0, T0 + timedelta(days=24)),
        ticket("t1", "a", "T-1", "open", T0 + timedelta(days=24), priority="urgent"),
        ticket("t2", "a", "T-2", "open", T0 + timedelta(days=24), priority="high"),
        ticket("t3", "a", "T-3", "open", T0 + timedelta(days=24)),
    ]
    card = parse_scorecard("""
segments:
  - name: everyone
    measures: {recency: {weight: 25}, nps: {weight: 25}, open_tickets: {weight: 20}}
""")
    shown = health(run(events, card=card).live, card)
    assert shown is not None
    # recency: 24 idle days -> 100 * 6 / 28 = 21.43; nps 0; tickets 100 - 15 - 2 * 35 = 15.
    # (25 * 21.4286 + 25 * 0 + 20 * 15) / 70 = 11.939 -> 11.9; factors show values to a tenth (21.4).
    assert shown.score == 11.9
    assert [(f.measure, f.contribution) for f in shown.factors] == [
        ("nps", 0.0),
        ("recency", 7.64),
        ("open_tickets", 4.29),
    ]


def test_band_thresholds_and_hysteresis() -> None:
    bands = Bands()
    assert [raw_band(s, bands) for s in (39.9, 40, 69.9, 70)] == ["red", "yellow", "yellow", "green"]
    assert band_after(None, 39.9, bands) == "red"
    # Worse at once...
    assert band_after("green", 69.9, bands) == "yellow"
    assert band_after("yellow", 39.9, bands) == "red"
    # ...better only 3 points past the threshold.
    assert band_after("red", 41, bands) == "red"
    assert band_after("red", 43, bands) == "yellow"
    assert band_after("yellow", 72, bands) == "yellow"
    assert band_after("yellow", 73, bands) == "green"
    assert band_after("red", 80, bands) == "green"


def test_an_account_hovering_at_a_threshold_does_not_flap() -> None:
    bands = Bands()
    band = None
    seen = []
    for score in (45, 39, 41, 39.5, 42, 40.5, 43.5, 41):
        band = band_after(band, score, bands)
        seen.append(band)
    assert seen == ["yellow", "red", "red", "red", "red", "red", "yellow", "yellow"]


@pytest.mark.parametrize(
    ("facts", "segment"),
    [
        (AccountFacts(lifecycle_stage=LifecycleStage.ONBOARDING, mrr=50_000), "onboarding"),
        (AccountFacts(mrr=9_000), "enterprise"),  # ARR 108,000
        (AccountFacts(plan="Enterprise", mrr=100), "enterprise-plan"),
        (AccountFacts(plan="pro", mrr=500), "standard"),
        (AccountFacts(), "standard"),
    ],
)
def test_segments_by_rules_over_account_facts(facts: AccountFacts, segment: str) -> None:
    assert segment_for(facts, DEFAULT_CARD).name == segment


def test_each_segment_scores_with_its_own_measures() -> None:
    onboarding = run(
        [
            traits("g", "a", T0, lifecycle_stage="onboarding", onboarding_started_at=T0.isoformat()),
            usage("u", "a", T0 + timedelta(days=6), name="Login"),
        ]
    ).live
    shown = health(onboarding, DEFAULT_CARD)
    assert shown is not None and shown.segment == "onboarding"
    assert {f.measure for f in shown.factors} == {
        "onboarding",
        "active_users",
        "recency",
        "peer_usage",
        "feature_breadth",
        "open_tickets",
        "payment",
    }
    # The stage moves on: the same account is now scored as a mature one.
    mature = run(
        [
            traits("g", "a", T0, lifecycle_stage="onboarding"),
            traits("g2", "a", T0 + timedelta(days=40), lifecycle_stage="adoption"),
            usage("u", "a", T0 + timedelta(days=41)),
        ]
    ).live
    assert mature.segment == "standard"


@pytest.mark.parametrize(
    ("survey_type", "score"), [("nps", 11), ("nps", -1), ("csat", 0), ("csat", 6), ("ces", 0), ("ces", 8)]
)
def test_survey_scores_outside_their_scale_are_unusable(survey_type: str, score: int) -> None:
    with pytest.raises(UnusableEvent, match="outside"):
        to_entry(
            envelope(
                EventType.SURVEY_RESPONSE,
                "odd",
                "a",
                T0,
                {"response_id": "r", "survey_type": survey_type, "score": score},
            ),
            DEFAULT_CARD,
            Competitors([]),
        )


def test_an_unusable_payload_is_refused_before_anything_changes() -> None:
    with pytest.raises(UnusableEvent, match="survey_response payload"):
        to_entry(
            envelope(EventType.SURVEY_RESPONSE, "bad", "a", T0, {"survey_type": "nps", "score": "loud"}),
            DEFAULT_CARD,
            Competitors([]),
        )
    assert (
        to_entry(envelope(EventType.IDENTIFY, "i", "a", T0, {"traits": {}}), DEFAULT_CARD, Competitors([]))
        is None
    )


def test_competitors_match_whole_words_case_insensitively() -> None:
    competitors = Competitors(["Gainsight", "Churn Zero"])
    assert competitors.named_in("we are trialling GAINSIGHT next month") == ["Gainsight"]
    assert competitors.named_in("Gainsightly is not a vendor", None) == []
    assert competitors.named_in("churn zero, and gainsight.") == ["Churn Zero", "Gainsight"]
