"""Each measure on hand-computed examples, and its sentence."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from services.scoring import measures as m
from services.scoring.config import (
    ActiveUsers,
    Ces,
    Csat,
    FeatureBreadth,
    Nps,
    Onboarding,
    OpenTickets,
    Payment,
    Recency,
    Renewal,
    TicketRate,
    UsageTrend,
)
from services.scoring.model import DAY, USER_SAMPLE, Model, _see_user, active_users, bump, decayed, moment
from tests.scoring.events import (
    DEFAULT_CARD,
    T0,
    daily_usage,
    group,
    nps,
    outcome,
    run,
    survey,
    ticket,
    traits,
    usage,
)

NOW = T0.timestamp() + 100 * DAY


def words(measure: str, result: m.Result) -> str:
    return m.describe(measure, result[1])


def test_decayed_counter_halves_per_half_life_and_adds_late_events_at_their_own_weight() -> None:
    counter = bump(None, 0.0, 7 * DAY)
    assert decayed(counter, 7 * DAY, 7 * DAY) == pytest.approx(0.5)
    assert decayed(counter, 14 * DAY, 7 * DAY) == pytest.approx(0.25)
    in_order = bump(bump(None, 0.0, 7 * DAY), 7 * DAY, 7 * DAY)
    late = bump(bump(None, 7 * DAY, 7 * DAY), 0.0, 7 * DAY)
    assert decayed(in_order, 10 * DAY, 7 * DAY) == pytest.approx(decayed(late, 10 * DAY, 7 * DAY))


def test_usage_trend_compares_the_week_with_the_four_week_baseline() -> None:
    model = Model()
    model.first_usage = NOW - 400 * DAY  # old enough that warm-up no longer matters
    # Steady states: 10 events a day on a 7-day half-life, 20 a day on a 28-day one.
    model.u_recent = [10 * 7 / math.log(2), NOW]
    model.u_base = [20 * 28 / math.log(2), NOW]
    result = m.usage_trend(model, UsageTrend(weight=1), DEFAULT_CARD, NOW)
    assert result[0] == pytest.approx(50.0, abs=0.01)
    assert words("usage_trend", result) == (
        "product usage down 50% vs the account's 4-week baseline (70 events a week against 140)"
    )
    young = Model()
    young.first_usage, young.u_recent, young.u_base = NOW - 5 * DAY, [1.0, NOW], [1.0, NOW]
    result = m.usage_trend(young, UsageTrend(weight=1), DEFAULT_CARD, NOW)
    assert result[0] is None
    assert (
        words("usage_trend", result) == "not enough history for a usage baseline yet (5 of 14 days): left out"
    )


def test_usage_trend_of_a_steady_account_is_full_and_of_a_fading_one_falls() -> None:
    steady = run(daily_usage("a", days=60, per_day=5)).live
    assert m.usage_trend(steady, UsageTrend(weight=1), DEFAULT_CARD, steady.clock or 0)[0] == pytest.approx(
        100, abs=2
    )
    fading = run(
        daily_usage("a", days=50, per_day=10)
        + daily_usage("a", days=10, per_day=2, start=T0 + timedelta(days=50), prefix="late")
    ).live
    value, reading = m.usage_trend(fading, UsageTrend(weight=1), DEFAULT_CARD, fading.clock or 0)
    # 10 a day for seven weeks, then 2 a day for ten days: the short memory falls first.
    assert value is not None and value < 75
    assert m.describe("usage_trend", reading).startswith("product usage down")


def test_active_users_against_seats() -> None:
    events = [group("g", "a", "Acme", seats=10)]
    events += [usage(f"u{i}", "a", T0 + timedelta(days=20, hours=i), user_id=f"user-{i}") for i in range(3)]
    events += [usage("old", "a", T0 + timedelta(days=1), user_id="user-9")]  # not in the last 7 days
    model = run(events).live
    result = m.active_users_measure(model, ActiveUsers(weight=1), DEFAULT_CARD, model.clock or 0)
    # 3 of 10 seats = 30%; 60% counts as fully healthy: 30 / 60 = 50.
    assert result[0] == pytest.approx(50.0)
    assert words("active_users", result) == "3 of 10 seats active in the last 7 days (30%)"
    no_seats = run(events[1:]).live
    result = m.active_users_measure(no_seats, ActiveUsers(weight=1), DEFAULT_CARD, no_seats.clock or 0)
    assert result[0] is None and "seats trait is unknown: left out" in words("active_users", result)


def test_many_users_are_estimated_from_a_bounded_sample() -> None:
    model = Model()
    model.clock = NOW
    for i in range(2000):
        _see_user(model, f"user-{i}", NOW - (i % 20) * DAY)  # 100 users a day for 20 days: 1,000 in 10
    assert len(model.users) == USER_SAMPLE
    estimate, exact = active_users(model, NOW - 9.5 * DAY)
    assert not exact
    assert estimate == pytest.approx(1000, rel=0.5)


def test_feature_breadth_counts_distinct_features_in_the_window() -> None:
    names = ["Report Built", "Dashboard Shared", "Export Run", "Report Built"]
    events = [usage(f"f{i}", "a", T0 + timedelta(days=40, hours=i), name=n) for i, n in enumerate(names)]
    events.append(usage("stale", "a", T0, name="Alert Created"))  # 40 days before: outside 30
    model = run(events).live
    result = m.feature_breadth(model, FeatureBreadth(weight=1), DEFAULT_CARD, model.clock or 0)
    assert result[0] == pytest.approx(60.0)  # 3 of 5 expected
    assert words("feature_breadth", result) == "3 distinct features used in the last 30 days (5 expected)"
    keyed = DEFAULT_CARD.model_copy(
        update={"key_features": ["Report Built", "Export Run", "Alert Created", "SSO"]}
    )
    model = run(events, card=keyed).live
    result = m.feature_breadth(model, FeatureBreadth(weight=1), keyed, model.clock or 0)
    assert result[0] == pytest.approx(50.0)
    assert words("feature_breadth", result) == "2 of 4 key features used in the last 30 days"


def test_recency_falls_linearly_from_two_to_thirty_idle_days() -> None:
    model = run([usage("u1", "a", T0), ticket("t1", "a", "T-1", "open", T0 + timedelta(days=16))]).live
    result = m.recency(model, Recency(weight=1), DEFAULT_CARD, model.clock or 0)
    assert result[0] == pytest.approx(100 * (30 - 16) / 28)
    assert words("recency", result) == "last product activity 16 days ago"
    fresh = run([usage("u1", "a", T0)]).live
    assert m.recency(fresh, Recency(weight=1), DEFAULT_CARD, fresh.clock or 0) == (100.0, ("idle", 0.0))


def test_open_tickets_count_severity_and_age() -> None:
    model = run(
        [
            ticket("t1", "a", "T-1", "open", T0),  # normal, 10 days old by the end: aged
            ticket("t2", "a", "T-2", "open", T0 + timedelta(days=9), priority="urgent"),
            ticket("t3", "a", "T-3", "solved", T0 + timedelta(days=10)),
            ticket("t4", "a", "T-3", "open", T0 + timedelta(days=9, hours=12)),  # older than solved: ignored
        ]
    ).live
    result = m.open_tickets(model, OpenTickets(weight=1), DEFAULT_CARD, model.clock or 0)
    assert result[0] == 100 - 15 - 35 - 10
    assert words("open_tickets", result) == (
        "2 open tickets (1 high priority or escalated, 1 open over a week), oldest opened 10 days ago"
    )


def test_ticket_rate_against_the_account_baseline() -> None:
    model = Model()
    model.first_at = NOW - 4000 * DAY  # warm-up long over
    model.t_recent = [3 * 7 / math.log(2) / 7, NOW]  # 3 a week = 3/7 a day
    model.t_base = [1 * 56 / math.log(2) / 7, NOW]  # 1 a week
    result = m.ticket_rate(model, TicketRate(weight=1), DEFAULT_CARD, NOW)
    assert result[0] == pytest.approx(0.0)  # 3x the baseline: the configured zero
    model.t_recent = [2 * 7 / math.log(2) / 7, NOW]
    result = m.ticket_rate(model, TicketRate(weight=1), DEFAULT_CARD, NOW)
    assert result[0] == pytest.approx(50.0)
    assert words("ticket_rate", result).startswith("new tickets at 2.0x the account's 8-week rate")


@pytest.mark.parametrize(
    ("score", "value", "word"),
    [
        (10, 100, "promoter"),
        (9, 100, "promoter"),
        (8, 70, "passive"),
        (7, 70, "passive"),
        (6, 30, "detractor"),
        (3, 15, "detractor"),
        (0, 0, "detractor"),
    ],
)
def test_nps_mapping(score: int, value: float, word: str) -> None:
    model = run([nps("n", "a", "r1", score, T0)]).live
    result = m.nps(model, Nps(weight=1), DEFAULT_CARD, model.clock or 0)
    assert result[0] == value
    assert words("nps", result) == f"latest NPS response {score} ({word})"


def test_nps_trend_and_the_latest_answer_by_event_time() -> None:
    later, earlier = T0 + timedelta(days=2), T0 + timedelta(days=1)
    model = run([nps("n2", "a", "r2", 9, later), nps("n1", "a", "r1", 2, earlier)]).live
    assert m.nps(model, Nps(weight=1), DEFAULT_CARD, model.clock or 0)[0] == 100  # the older one arrived late
    falling = run(
        [nps("n1", "a", "r1", 9, earlier, user_id="u1"), nps("n2", "a", "r2", 7, later, user_id="u2")]
    ).live
    result = m.nps(falling, Nps(weight=1), DEFAULT_CARD, falling.clock or 0)
    assert result[0] == 70 - 10
    assert words("nps", result) == "latest NPS response 7 (passive), down from 9"


def test_csat_and_ces_on_their_scales() -> None:
    model = run([survey("c", "a", "c1", "csat", 4, T0), survey("e", "a", "e1", "ces", 5, T0)]).live
    assert m.csat(model, Csat(weight=1), DEFAULT_CARD, model.clock or 0)[0] == pytest.approx(75.0)
    assert m.ces(model, Ces(weight=1), DEFAULT_CARD, model.clock or 0)[0] == pytest.approx(400 / 6)
    assert (
        words("csat", m.csat(model, Csat(weight=1), DEFAULT_CARD, model.clock or 0))
        == "latest CSAT response 4 of 5"
    )


@pytest.mark.parametrize(
    ("status", "value", "text"),
    [
        ("paid", 100.0, "payments current"),
        ("failed", 20.0, "last payment failed"),
        ("overdue", 0.0, "invoice past due"),
    ],
)
def test_payment_status(status: str, value: float, text: str) -> None:
    model = run([traits("g", "a", T0, payment_status=status)]).live
    result = m.payment(model, Payment(weight=1), DEFAULT_CARD, model.clock or 0)
    assert result[0] == value and words("payment", result) == text
    unknown = run([traits("g", "a", T0, payment_status=42)]).live  # unreadable: unknown, never zero
    assert m.payment(unknown, Payment(weight=1), DEFAULT_CARD, unknown.clock or 0)[0] is None


def test_renewal_pressure_overdue_and_renewed() -> None:
    due = (T0 + timedelta(days=45)).date().isoformat()
    model = run([traits("g", "a", T0, renewal_date=due)]).live
    result = m.renewal(model, Renewal(weight=1), DEFAULT_CARD, model.clock or 0)
    # 45 of 90 days left: halfway from 100 to the value at the date (40) = 70.
    assert result[0] == pytest.approx(40 + 60 * (45 - 9 / 24) / 90, abs=0.5)
    assert words("renewal", result) == f"renews in 45 days ({due})"
    overdue = run([traits("g", "a", T0, renewal_date="2026-09-20")]).live
    result = m.renewal(overdue, Renewal(weight=1), DEFAULT_CARD, overdue.clock or 0)
    assert result[0] == 0.0
    assert words("renewal", result) == "renewal date 2026-09-20 passed 11 days ago with no renewal recorded"
    # A renewal that says when the next one is moves the date...
    moved = run(
        [
            traits("g", "a", T0, renewal_date="2026-09-20"),
            outcome("r", "a", "Subscription Renewed", T0 + timedelta(hours=1), renewal_date="2027-09-20"),
        ]
    ).live
    result = m.renewal(moved, Renewal(weight=1), DEFAULT_CARD, moved.clock or 0)
    assert result[0] == 100.0 and words("renewal", result) == "renews in 354 days (2027-09-20)"
    # ...and one that does not still counts as renewed for the date it was near.
    renewed = run(
        [
            traits("g", "a", T0, renewal_date="2026-10-20"),
            outcome("r", "a", "subscription_renewed", T0 + timedelta(hours=1)),
        ]
    ).live
    result = m.renewal(renewed, Renewal(weight=1), DEFAULT_CARD, renewed.clock or 0)
    assert result[0] == 100.0 and words("renewal", result) == "renewed for the term ending 2026-10-20"


def test_onboarding_time_to_first_value() -> None:
    start = traits("g", "a", T0, lifecycle_stage="onboarding", onboarding_started_at=T0.isoformat())
    waiting = run([start, usage("u", "a", T0 + timedelta(days=12), name="Invited Teammate")]).live
    result = m.onboarding(waiting, Onboarding(weight=1), DEFAULT_CARD, waiting.clock or 0)
    assert result[0] == pytest.approx(60.0)  # day 12 of 30
    assert words("onboarding", result) == "no value milestone yet: day 12 of 30"
    reached = run([start, usage("u", "a", T0 + timedelta(days=10), name="report built")]).live
    result = m.onboarding(reached, Onboarding(weight=1), DEFAULT_CARD, reached.clock or 0)
    assert result[0] == 100.0 and words("onboarding", result) == "first value reached on day 10 (target 30)"
    late = run([start, usage("u", "a", T0 + timedelta(days=40), name="Report Built")]).live
    assert m.onboarding(late, Onboarding(weight=1), DEFAULT_CARD, late.clock or 0)[0] == 70.0
    guessed = run(
        [usage("first", "a", T0, name="Login"), usage("u", "a", T0 + timedelta(days=3), name="Login")]
    ).live
    result = m.onboarding(guessed, Onboarding(weight=1), DEFAULT_CARD, guessed.clock or 0)
    assert words("onboarding", result) == (
        "no value milestone yet: day 3 of 30 (counted from the first activity seen)"
    )


def test_times_are_read_from_epoch_seconds() -> None:
    assert moment(T0.timestamp()) == T0
