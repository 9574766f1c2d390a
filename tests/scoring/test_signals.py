"""Each signal: when it is raised, its dedupe key, what a CSM reads, and when it clears."""

from __future__ import annotations

from datetime import timedelta

from services.scoring.config import parse_scorecard
from services.scoring.engine import AccountEngine
from services.scoring.model import DAY
from shared.events import RiskSignalPayload
from tests.scoring.events import (
    DEFAULT_CARD,
    T0,
    daily_usage,
    feed,
    group,
    nps,
    outcome,
    run,
    survey,
    ticket,
    traits,
    usage,
)


def told(engine: AccountEngine) -> list[RiskSignalPayload]:
    return [signal for _, signal in engine.take_outputs().signals]


def keys(signals: list[RiskSignalPayload]) -> list[tuple[str, str, str]]:
    return [(s.signal_type, s.status.value, s.dedupe_key) for s in signals]


def test_entered_red_is_raised_once_and_cleared_when_the_account_recovers() -> None:
    engine = run([nps("n1", "a", "r1", 0, T0, user_id="u1"), nps("n2", "a", "r2", 1, T0, user_id="u2")])
    signals = told(engine)
    red = [s for s in signals if s.signal_type == "entered_red"]
    assert keys(red) == [("entered_red", "raised", "entered_red:a:1")]
    assert red[0].summary == "turned red: health 0; latest NPS response 0 (detractor)"
    assert red[0].segment == "standard" and red[0].band == "red" and red[0].factors
    # Two promoters later the account recovers: the condition clears, and a new dip is episode 2.
    feed(
        engine,
        [
            nps("n3", "a", "r1", 10, T0 + timedelta(days=1), user_id="u1"),
            nps("n4", "a", "r2", 10, T0 + timedelta(days=1), user_id="u2"),
        ],
    )
    assert ("entered_red", "cleared", "entered_red:a:1:cleared") in keys(told(engine))
    feed(engine, [nps("n5", "a", "r5", 0, T0 + timedelta(days=2), user_id="u3")])
    assert ("entered_red", "raised", "entered_red:a:2") in keys(told(engine))


def test_band_dropped_and_score_drop_when_no_specific_signal_explains_them() -> None:
    card = parse_scorecard("""
segments:
  - name: everyone
    measures: {recency: {weight: 1}, nps: {weight: 1}}
""")
    engine = run([usage("u", "a", T0), nps("n1", "a", "r1", 10, T0)], card=card)
    told(engine)
    # Twenty quiet days: recency falls to 100 * 10 / 28 = 35.7 and the score to about 68, found by ticks.
    engine.advance(T0.timestamp() + 20 * DAY)
    signals = {s.signal_type: s for s in told(engine) if s.status.value == "raised"}
    assert signals["band_dropped"].dedupe_key == "band_dropped:a:1"
    assert (signals["band_dropped"].band, signals["band_dropped"].summary.split(":")[0]) == (
        "yellow",
        "health dropped to yellow",
    )
    drop = signals["score_drop"]
    assert drop.dedupe_key == "score_drop:a:1"
    assert drop.summary.startswith("health fell ")
    assert drop.evidence["peak"] == 100.0 and drop.evidence["within_days"] == 14


def test_detractor_once_per_response_even_when_amended_and_cleared_when_no_longer_one() -> None:
    engine = run([group("g", "a", "Acme Corp"), nps("n1", "a", "r1", 3, T0, comment="Too slow")])
    [detractor] = [s for s in told(engine) if s.signal_type == "detractor_response"]
    assert detractor.dedupe_key == "detractor:a:r1"
    assert detractor.summary == 'NPS detractor (score 3): "Too slow"'
    assert detractor.evidence["comment"] == "Too slow" and detractor.evidence["respondent"] == "user-1"
    feed(engine, [nps("n1b", "a", "r1", 2, T0, comment="Even slower")])  # amended, still a detractor
    assert [s for s in told(engine) if s.signal_type == "detractor_response"] == []
    feed(engine, [nps("n1c", "a", "r1", 8, T0 + timedelta(minutes=5))])  # amended to passive
    assert ("detractor_response", "cleared", "detractor:a:r1:cleared") in keys(told(engine))


def test_low_csat_counts_as_negative_feedback_and_promoters_are_expansion() -> None:
    engine = run(
        [
            survey("c", "a", "c1", "csat", 1, T0, comment="Nobody answered"),
            nps("p", "a", "p1", 10, T0, comment="Love it", user_id="u9"),
        ]
    )
    signals = {s.signal_type: s for s in told(engine)}
    assert signals["detractor_response"].summary == 'CSAT low score (score 1): "Nobody answered"'
    promoter = signals["promoter_response"]
    assert promoter.kind.value == "expansion" and promoter.dedupe_key == "promoter:a:p1"


def test_competitor_named_in_a_ticket_or_survey() -> None:
    engine = run(
        [
            ticket("t1", "a", "T-9", "open", T0, subject="Moving to ChurnZero?"),
            nps("n", "a", "r1", 7, T0, comment="Gainsight does this better"),
        ]
    )
    found = {s.dedupe_key: s for s in told(engine) if s.signal_type == "competitor_mentioned"}
    assert set(found) == {"competitor:a:ticket:T-9:churnzero", "competitor:a:survey:r1:gainsight"}
    assert found["competitor:a:ticket:T-9:churnzero"].summary == (
        'competitor ChurnZero named in ticket T-9: "Moving to ChurnZero?"'
    )
    assert found["competitor:a:survey:r1:gainsight"].evidence["excerpt"] == "Gainsight does this better"
    # A month of event time later (a daily tick passes the 30-day window) the mentions lapse.
    engine.advance(T0.timestamp() + 31 * DAY)
    assert ("competitor_mentioned", "cleared") in {(t, s) for t, s, _ in keys(told(engine))}


def test_high_severity_ticket_until_it_is_solved() -> None:
    engine = run([ticket("t1", "a", "T-1", "open", T0, priority="urgent", subject="Data loss on export")])
    [raised] = [s for s in told(engine) if s.signal_type == "high_severity_ticket"]
    assert raised.dedupe_key == "high_severity_ticket:a:T-1"
    assert raised.summary == 'urgent ticket T-1 open: "Data loss on export"'
    feed(engine, [ticket("t2", "a", "T-2", "open", T0, tags=["Escalated"])])
    assert keys([s for s in told(engine) if s.signal_type == "high_severity_ticket"]) == [
        ("high_severity_ticket", "raised", "high_severity_ticket:a:T-2")
    ]
    feed(
        engine,
        [
            ticket("t3", "a", "T-1", "solved", T0 + timedelta(hours=1)),
            ticket("t4", "a", "T-2", "closed", T0 + timedelta(hours=2)),
        ],
    )
    assert ("high_severity_ticket", "cleared", "high_severity_ticket:a:T-2:cleared") in keys(told(engine))


def test_payment_issue_raised_on_failure_and_cleared_when_paid() -> None:
    engine = run([traits("g", "a", T0, payment_status="failed")])
    [raised] = [s for s in told(engine) if s.signal_type == "payment_issue"]
    assert (raised.dedupe_key, raised.summary) == ("payment_issue:a:1", "payment failed")
    feed(engine, [traits("g2", "a", T0 + timedelta(days=1), payment_status="past_due")])
    assert [s for s in told(engine) if s.signal_type == "payment_issue"] == []  # the same episode
    feed(engine, [traits("g3", "a", T0 + timedelta(days=2), payment_status="paid")])
    assert ("payment_issue", "cleared", "payment_issue:a:1:cleared") in keys(told(engine))


def test_renewal_within_90_days_while_not_green() -> None:
    due = (T0 + timedelta(days=60)).date().isoformat()
    engine = run([traits("g", "a", T0, renewal_date=due), nps("n", "a", "r", 6, T0)])
    [raised] = [s for s in told(engine) if s.signal_type == "renewal_at_risk"]
    assert raised.dedupe_key == f"renewal_at_risk:a:{due}:1"
    assert raised.summary.startswith(f"renewal in 60 days ({due}) while health is")
    feed(engine, [outcome("r", "a", "Subscription Renewed", T0 + timedelta(days=1))])
    assert ("renewal_at_risk", "cleared", f"renewal_at_risk:a:{due}:1:cleared") in keys(told(engine))


def test_a_renewal_coming_into_range_on_a_quiet_account_is_found_by_a_tick() -> None:
    due = (T0 + timedelta(days=100)).date().isoformat()
    engine = run([traits("g", "a", T0, renewal_date=due), nps("n", "a", "r", 6, T0)])
    assert [s for s in told(engine) if s.signal_type == "renewal_at_risk"] == []
    engine.advance(T0.timestamp() + 12 * DAY)  # no events: the partition's watermark moves on
    [raised] = [s for s in told(engine) if s.signal_type == "renewal_at_risk"]
    assert raised.evidence["days_to_renewal"] < 90


def test_onboarding_behind_at_day_30_without_a_milestone() -> None:
    start = traits("g", "a", T0, lifecycle_stage="onboarding", onboarding_started_at=T0.isoformat())
    engine = run([start, usage("u", "a", T0 + timedelta(days=2), name="Login")])
    engine.advance(T0.timestamp() + 29 * DAY)
    assert [s for s in told(engine) if s.signal_type == "onboarding_behind"] == []
    engine.advance(T0.timestamp() + 31 * DAY)
    [raised] = [s for s in told(engine) if s.signal_type == "onboarding_behind"]
    assert raised.dedupe_key == "onboarding_behind:a:1"
    # Found by the first daily tick past day 30 (ticks fall at a fixed second of the day per account).
    assert 30 <= raised.evidence["day"] < 31
    assert raised.summary == (
        f"onboarding behind: day {raised.evidence['day']:.0f} and no value milestone yet (target: by day 30)"
    )
    feed(engine, [usage("m", "a", T0 + timedelta(days=32), name="Report Built")])
    assert ("onboarding_behind", "cleared", "onboarding_behind:a:1:cleared") in keys(told(engine))


def test_seats_nearly_full_and_usage_near_the_plan_limit_are_expansion_signals() -> None:
    engine = run(
        [
            group("g", "a", "Acme", seats=10, plan_event_limit=1000),
            *daily_usage("a", days=10, per_day=40, users=9),
        ]
    )
    signals = {s.signal_type: s for s in told(engine)}
    seats = signals["seats_nearly_full"]
    assert (seats.kind.value, seats.dedupe_key) == ("expansion", "seats_nearly_full:a:1")
    assert seats.summary == "9 of 10 seats in use in the last 30 days: room to expand"
    limit = signals["usage_near_plan_limit"]
    assert limit.evidence["plan_event_limit"] == 1000 and limit.evidence["events_per_30_days"] > 900


def test_usage_decline_against_the_baseline_and_its_recovery() -> None:
    steady = daily_usage("a", days=42, per_day=20)
    quiet = daily_usage("a", days=14, per_day=2, start=T0 + timedelta(days=42), prefix="q")
    engine = run(steady + quiet)
    [decline] = [s for s in told(engine) if s.signal_type == "usage_decline"]
    assert decline.dedupe_key == "usage_decline:a:1"
    assert decline.summary.startswith("product usage down")
    assert decline.evidence["usage_ratio"] < 0.6
    feed(engine, daily_usage("a", days=21, per_day=40, start=T0 + timedelta(days=56), prefix="back"))
    assert ("usage_decline", "cleared", "usage_decline:a:1:cleared") in keys(told(engine))


def test_ticket_spike_against_the_account_baseline() -> None:
    history = [ticket(f"b{i}", "a", f"B-{i}", "solved", T0 + timedelta(days=7 * i)) for i in range(8)]
    spike = [
        ticket(f"s{i}", "a", f"S-{i}", "open", T0 + timedelta(days=56, hours=i), subject=f"Sync broken {i}")
        for i in range(5)
    ]
    engine = run(history + spike)
    [raised] = [s for s in told(engine) if s.signal_type == "ticket_spike"]
    assert raised.dedupe_key == "ticket_spike:a:1"
    assert raised.evidence["ticket_ratio"] >= 2 and "Sync broken 0" in raised.evidence["open_ticket_subjects"]


def test_champion_replaced_then_active_and_a_champion_gone_quiet() -> None:
    engine = run(
        [
            traits("g", "a", T0, champion_user_id="alice"),
            usage("u1", "a", T0, user_id="alice"),
            traits("g2", "a", T0 + timedelta(days=1), champion_user_id="bob"),
        ]
    )
    [replaced] = [s for s in told(engine) if s.signal_type == "champion_change"]
    assert replaced.summary == "champion changed from alice to bob; the new champion is not active yet"
    assert replaced.evidence["previous_champion"] == "alice"
    feed(engine, [usage("u2", "a", T0 + timedelta(days=2), user_id="bob")])
    assert ("champion_change", "cleared", "champion_change:a:1:cleared") in keys(told(engine))
    # Bob stops using the product while others go on.
    feed(engine, [usage(f"o{d}", "a", T0 + timedelta(days=2 + d), user_id="carol") for d in range(1, 20)])
    [quiet] = [s for s in told(engine) if s.signal_type == "champion_change" and s.status.value == "raised"]
    assert quiet.dedupe_key == "champion_change:a:2"
    assert quiet.summary.startswith("champion bob has gone quiet (last active 15 days ago)")


def test_a_churned_account_stops_alerting() -> None:
    engine = run([traits("g", "a", T0, payment_status="failed"), nps("n", "a", "r", 1, T0)])
    assert {s.signal_type for s in told(engine)} >= {"payment_issue", "detractor_response", "entered_red"}
    feed(engine, [outcome("c", "a", "Account Churned", T0 + timedelta(days=1))])
    cleared = told(engine)
    assert {s.status.value for s in cleared} == {"cleared"}
    assert {s.signal_type for s in cleared} >= {"payment_issue", "detractor_response", "entered_red"}
    assert cleared[0].summary.endswith("cleared: the account churned")
    feed(engine, [nps("n2", "a", "r2", 0, T0 + timedelta(days=2), user_id="u2")])
    assert told(engine) == []


def test_disabled_signal_types_are_never_emitted() -> None:
    card = DEFAULT_CARD.model_copy(
        update={
            "signals": DEFAULT_CARD.signals.model_copy(
                update={"disabled": ["detractor_response", "entered_red"]}
            )
        }
    )
    engine = run([nps("n", "a", "r", 0, T0)], card=card)
    assert {s.signal_type for s in told(engine)}.isdisjoint({"detractor_response", "entered_red"})


def test_thresholds_come_from_the_scorecard() -> None:
    card = parse_scorecard("""
segments:
  - name: everyone
    measures: {payment: {weight: 1}}
signals:
  seats_nearly_full: {ratio: 0.5, recover_ratio: 0.4}
""")
    engine = run(
        [group("g", "a", "Acme", seats=10)]
        + [usage(f"u{i}", "a", T0 + timedelta(minutes=2 * i), user_id=f"p{i}") for i in range(5)],
        card=card,
    )
    assert "seats_nearly_full" in {s.signal_type for s in told(engine)}


def test_a_burst_of_usage_is_scored_once_a_minute_and_its_tail_by_the_next_tick() -> None:
    card = parse_scorecard("""
segments:
  - name: everyone
    measures: {recency: {weight: 1}}
""")
    burst = [usage(f"u{i}", "a", T0 + timedelta(seconds=5 * i), user_id=f"p{i}") for i in range(6)]
    engine = run([group("g", "a", "Acme", seats=6), *burst], card=card)
    # Every event of the burst falls within the minute after the group call's evaluation.
    assert engine.live.evaluated_at == T0.timestamp()
    assert "seats_nearly_full" not in {s.signal_type for s in told(engine)}
    engine.advance(T0.timestamp() + DAY)
    assert engine.live.evaluated_at is not None and engine.live.evaluated_at > T0.timestamp()
    assert "seats_nearly_full" in {s.signal_type for s in told(engine)}


def test_a_drop_caused_by_a_specific_signal_is_told_within_it_not_apart() -> None:
    engine = run([usage("u", "a", T0), nps("n1", "a", "r1", 10, T0)])
    told(engine)
    feed(engine, [nps("n2", "a", "r2", 1, T0 + timedelta(hours=1), user_id="u2", comment="Unusable")])
    signals = told(engine)
    assert [s.signal_type for s in signals] == ["detractor_response"]
    [detractor] = signals
    assert detractor.evidence["also"] == ["band_dropped", "score_drop"]
    assert (detractor.previous_score, detractor.previous_band) == (100.0, "green")
    assert {"band_dropped", "score_drop"} <= set(engine.emitted)  # held, silently
    # Recovery clears them silently too: nothing was told, nothing to resolve.
    feed(engine, [nps("n3", "a", "r2", 10, T0 + timedelta(hours=2), user_id="u2")])
    assert {(s.signal_type, s.status.value) for s in told(engine)} == {
        ("detractor_response", "cleared"),
        ("promoter_response", "raised"),
    }
