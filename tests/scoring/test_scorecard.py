"""The scorecard's pure rules: decay, measures, renormalisation, bands, signals, determinism."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from services.scoring.decay import DecayedCounter, rate_per_day
from services.scoring.measures import Measurement, nps, open_tickets, recency, usage_volume
from services.scoring.scorecard import WEIGHTS, assess, band_for, combine
from services.scoring.signals import detractor_response, entered_red
from services.scoring.state import AccountState, UnusableEvent, apply_event
from shared.events import Band, EventType
from tests.scoring.events import T0, daily_usage, envelope, group, ticket, usage
from tests.scoring.events import nps as nps_event


def run(events: list) -> AccountState:  # type: ignore[type-arg]
    state = AccountState()
    for event in events:
        apply_event(state, event)
    return state


def test_decay_halves_per_half_life_and_ignores_arrival_order() -> None:
    counter = DecayedCounter(0.0, T0).add(T0, 7.0)
    assert counter.at(T0 + timedelta(days=7), 7.0) == pytest.approx(0.5)
    assert counter.at(T0 + timedelta(days=14), 7.0) == pytest.approx(0.25)
    moments = [T0 + timedelta(hours=h * 5) for h in range(50)]
    in_order = DecayedCounter(0.0, moments[0])
    for moment in moments:
        in_order = in_order.add(moment, 7.0)
    shuffled = moments[:]
    random.Random(4).shuffle(shuffled)
    out_of_order = DecayedCounter(0.0, shuffled[0])
    for moment in shuffled:
        out_of_order = out_of_order.add(moment, 7.0)
    end = moments[-1]
    assert out_of_order.at(end, 7.0) == pytest.approx(in_order.at(end, 7.0))
    # A steady stream of 10 a day settles at a rate of about 10 a day.
    steady = DecayedCounter(0.0, T0)
    for i in range(10 * 200):
        steady = steady.add(T0 + timedelta(days=i / 10), 7.0)
    assert rate_per_day(steady.value, 7.0) == pytest.approx(10, rel=0.05)


def test_usage_needs_two_weeks_of_history_then_compares_to_baseline() -> None:
    young = run(daily_usage("a", days=10, per_day=5))
    assert usage_volume(young).value is None
    assert "not enough history" in usage_volume(young).detail

    steady = run(daily_usage("a", days=60, per_day=5))
    assert usage_volume(steady).value == pytest.approx(100, abs=1)

    declining = daily_usage("a", days=50, per_day=10) + daily_usage(
        "a", days=10, per_day=2, start=T0 + timedelta(days=50), prefix="late")
    measured = usage_volume(run(declining))
    # 10 a day for seven weeks, then 2 a day for ten days: the short memory falls first.
    assert measured.value is not None and measured.value < 75
    assert "down" in measured.detail


def test_recency_is_measured_on_event_time() -> None:
    state = run([usage("u1", "a", T0), ticket("t1", "a", "T-1", "open", T0 + timedelta(days=16))])
    measured = recency(state)
    assert measured.value == pytest.approx(100 * (30 - 16) / 28, abs=0.1)
    assert measured.detail == "last product activity 16 days ago"
    assert recency(run([usage("u1", "a", T0)])).value == 100


@pytest.mark.parametrize(("score", "value", "word"), [
    (10, 100, "promoter"), (9, 100, "promoter"), (8, 70, "passive"), (7, 70, "passive"),
    (6, 30, "detractor"), (3, 15, "detractor"), (0, 0, "detractor")])
def test_nps_mapping(score: int, value: float, word: str) -> None:
    measured = nps(run([nps_event("n", "a", "r1", score, T0)]))
    assert measured.value == value
    assert word in measured.detail and str(score) in measured.detail


def test_latest_nps_by_event_time_and_amendment() -> None:
    later, earlier = T0 + timedelta(days=2), T0 + timedelta(days=1)
    state = run([nps_event("n2", "a", "r2", 9, later), nps_event("n1", "a", "r1", 2, earlier)])
    assert nps(state).value == 100  # the older answer arrived late and does not win
    apply_event(state, nps_event("n2b", "a", "r2", 4, later))  # r2 amended
    assert nps(state).value == 20


def test_open_tickets_by_priority_and_late_updates() -> None:
    at = T0
    state = run([
        ticket("t1", "a", "T-1", "open", at),
        ticket("t2", "a", "T-2", "open", at, priority="urgent"),
        ticket("t3", "a", "T-3", "solved", at + timedelta(hours=2)),
        ticket("t4", "a", "T-3", "open", at + timedelta(hours=1)),  # older than solved: ignored
    ])
    measured = open_tickets(state)
    assert measured.value == 100 - 20 - 40
    assert measured.detail == "2 open tickets (1 high priority)"


def test_missing_measures_are_left_out_and_weights_renormalised() -> None:
    state = run([usage("u1", "a", T0), nps_event("n", "a", "r", 3, T0)])
    health = assess(state)
    assert health is not None
    by_measure = {f.measure: f for f in health.factors}
    assert by_measure["usage_volume"].value is None and by_measure["usage_volume"].weight == 0
    assert by_measure["open_tickets"].value is None
    assert "left out" in by_measure["open_tickets"].detail
    total = WEIGHTS["recency"] + WEIGHTS["nps"]
    assert by_measure["recency"].weight == pytest.approx(WEIGHTS["recency"] / total)
    assert health.score == pytest.approx((100 * WEIGHTS["recency"] + 15 * WEIGHTS["nps"]) / total, abs=0.1)
    # What pulls the score down most comes first; measures without data last.
    assert health.factors[0].measure == "nps"
    assert [f.value for f in health.factors[-2:]] == [None, None]
    assert assess(AccountState()) is None
    assert combine([]) is None


def test_score_is_the_exact_weighted_sum_rounded_once() -> None:
    health = combine([Measurement("usage_volume", None, "left out"), Measurement("recency", 6.0, ""),
                      Measurement("nps", 0.0, ""), Measurement("open_tickets", 20.0, "")])
    # (25 * 6 + 25 * 0 + 20 * 20) / 70 = 7.857...; the rounded contributions add up to 7.85.
    assert health is not None and health.score == 7.9
    assert [f.contribution for f in health.factors if f.value is not None] == [0.0, 2.14, 5.71]


@pytest.mark.parametrize(("survey_type", "score"), [
    ("nps", 11), ("nps", -1), ("csat", 0), ("csat", 6), ("ces", 0), ("ces", 8)])
def test_survey_scores_outside_their_scale_are_unusable(survey_type: str, score: int) -> None:
    state = run([usage("u1", "a", T0)])
    before = state.model_dump()
    with pytest.raises(UnusableEvent, match="outside"):
        apply_event(state, envelope(EventType.SURVEY_RESPONSE, "odd", "a", T0, {
            "response_id": "r", "survey_type": survey_type, "score": score}))
    assert state.model_dump() == before


def test_band_thresholds() -> None:
    assert band_for(39.9) is Band.RED
    assert band_for(40) is Band.YELLOW
    assert band_for(69.9) is Band.YELLOW
    assert band_for(70) is Band.GREEN


def test_detractor_signal_once_per_response_even_when_amended() -> None:
    state = run([group("g", "a", "Acme Corp")])
    first = nps_event("n1", "a", "r1", 3, T0, comment="Too slow")
    apply_event(state, first)
    signal = detractor_response("a", state, first, assess(state))
    assert signal is not None
    assert signal.dedupe_key == "detractor:a:r1"
    assert signal.summary == 'NPS detractor (score 3): "Too slow"'
    assert signal.evidence["comment"] == "Too slow"
    amended = nps_event("n1b", "a", "r1", 2, T0, comment="Even slower")
    apply_event(state, amended)
    assert detractor_response("a", state, amended, assess(state)) is None
    passive = nps_event("n2", "a", "r2", 7, T0)
    apply_event(state, passive)
    assert detractor_response("a", state, passive, assess(state)) is None


def test_entered_red_only_on_the_transition() -> None:
    state = run([group("g", "a", "Acme Corp"), nps_event("n", "a", "r", 0, T0)])
    red = assess(state)
    assert red is not None and red.band is Band.RED
    cause = nps_event("n", "a", "r", 0, T0)
    signal = entered_red("a", cause, None, red)
    assert signal is not None and signal.dedupe_key == "entered_red:a:n"
    assert signal.summary.startswith("turned red: health 0")
    assert entered_red("a", cause, red, red) is None
    green = combine([])
    assert entered_red("a", cause, red, green) is None


def test_unusable_payload_leaves_state_unchanged() -> None:
    state = run([usage("u1", "a", T0)])
    before = state.model_dump()
    with pytest.raises(UnusableEvent):
        apply_event(state, envelope(EventType.SURVEY_RESPONSE, "bad", "a", T0 + timedelta(days=3),
                                    {"survey_type": "nps", "score": "loud"}))
    assert state.model_dump() == before


def test_same_events_same_order_give_identical_state_and_score() -> None:
    events = [*daily_usage("a", days=30, per_day=3),
              ticket("t", "a", "T-1", "open", T0 + timedelta(days=20)),
              nps_event("n", "a", "r", 6, T0 + timedelta(days=25))]
    first, second = run(events), run(events)
    assert first.model_dump_json() == second.model_dump_json()
    assert assess(first) == assess(second)
    assert len(first.model_dump_json()) < 2_000  # compact: O(1) in the number of events
