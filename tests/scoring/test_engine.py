"""The account timeline: order within the lateness bound and duplicates do not matter (property
tests), late events are counted, overrides survive recomputation until they lapse, and the
explanation of a real scenario reads right."""

from __future__ import annotations

import random
from datetime import timedelta

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.scoring.engine import MAX_PENDING, AccountEngine
from services.scoring.model import DAY
from services.scoring.scorecard import health
from shared.events import Envelope
from tests.scoring.events import (
    T0,
    daily_usage,
    feed,
    group,
    nps,
    outcome,
    override,
    run,
    survey,
    ticket,
    traits,
    usage,
)

LATENESS = 3 * 3600.0


def fingerprint(engine: AccountEngine) -> bytes:
    """What must not depend on arrival order: the live model and the signals that hold."""
    return orjson.dumps([engine.live.encode(), engine.emitted], option=orjson.OPT_SORT_KEYS)


@st.composite
def histories(draw: st.DrawFn) -> list[Envelope]:
    """A few days of one account's life: usage by several users, tickets, surveys, traits."""
    count = draw(st.integers(min_value=5, max_value=60))
    events: list[Envelope] = []
    for n in range(count):
        at = T0 + timedelta(minutes=draw(st.integers(min_value=0, max_value=5 * 24 * 60)))
        kind = draw(
            st.sampled_from(["usage", "usage", "usage", "ticket", "nps", "csat", "traits", "outcome"])
        )
        if kind == "usage":
            events.append(
                usage(
                    f"e{n}",
                    "a",
                    at,
                    user_id=f"user-{draw(st.integers(0, 5))}",
                    name=draw(st.sampled_from(["Report Built", "Login", "Export Run"])),
                )
            )
        elif kind == "ticket":
            events.append(
                ticket(
                    f"e{n}",
                    "a",
                    f"T-{draw(st.integers(0, 3))}",
                    draw(st.sampled_from(["new", "open", "pending", "solved"])),
                    at,
                    priority=draw(st.sampled_from(["normal", "high", "urgent"])),
                    subject=draw(st.sampled_from([None, "Login broken", "Switching to Gainsight?"])),
                )
            )
        elif kind == "nps":
            events.append(
                nps(
                    f"e{n}",
                    "a",
                    f"r-{draw(st.integers(0, 3))}",
                    draw(st.integers(0, 10)),
                    at,
                    user_id=f"user-{draw(st.integers(0, 5))}",
                )
            )
        elif kind == "csat":
            events.append(survey(f"e{n}", "a", f"c-{n}", "csat", draw(st.integers(1, 5)), at))
        elif kind == "traits":
            events.append(
                traits(
                    f"e{n}",
                    "a",
                    at,
                    **draw(
                        st.fixed_dictionaries(
                            {},
                            optional={
                                "seats": st.integers(1, 12),
                                "payment_status": st.sampled_from(["current", "failed", "past_due"]),
                                "renewal_date": st.sampled_from(["2026-10-20", "2026-12-01"]),
                                "champion_user_id": st.sampled_from(["user-1", "user-2"]),
                                "lifecycle_stage": st.sampled_from(["onboarding", "adoption"]),
                                "mrr": st.sampled_from([100, 20_000]),
                            },
                        )
                    ),
                )
            )
        else:
            events.append(
                outcome(f"e{n}", "a", draw(st.sampled_from(["Account Churned", "Subscription Renewed"])), at)
            )
    return events


def arrival(events: list[Envelope], seed: int, duplicates: int) -> list[Envelope]:
    """A delivery order in which no event is later than the lateness bound, with some duplicates:
    each copy is delivered at its event time plus a delay shorter than the bound."""
    rng = random.Random(seed)
    copies = events + [rng.choice(events) for _ in range(duplicates)]
    keyed = [
        (e.occurred_at.timestamp() + rng.uniform(0, LATENESS * 0.99), i, e) for i, e in enumerate(copies)
    ]
    return [e for _, _, e in sorted(keyed)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=histories(), seed=st.integers(0, 2**32), duplicates=st.integers(0, 5))
def test_order_within_the_lateness_bound_and_duplicates_do_not_change_the_final_state(
    events: list[Envelope], seed: int, duplicates: int
) -> None:
    in_order = run(sorted(events, key=lambda e: (e.occurred_at, e.event_id)), lateness=LATENESS)
    shuffled = run(arrival(events, seed, duplicates), lateness=LATENESS)
    assert shuffled.late_events == 0
    assert fingerprint(shuffled) == fingerprint(in_order)
    assert health(shuffled.live, shuffled.card) == health(in_order.live, in_order.card)
    # The same again after the partition's watermark has moved on two weeks (daily ticks).
    later = T0.timestamp() + 14 * DAY
    in_order.advance(later)
    shuffled.advance(later)
    assert fingerprint(shuffled) == fingerprint(in_order)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=histories(), seed=st.integers(0, 2**32))
def test_a_reloaded_account_continues_exactly_as_one_never_stored(events: list[Envelope], seed: int) -> None:
    order = arrival(events, seed, 0)
    half = len(order) // 2
    straight = run(order, lateness=LATENESS)
    first = run(order[:half], lateness=LATENESS)
    reloaded = AccountEngine.decode("a", orjson.loads(orjson.dumps(first.encode())), first.card, LATENESS)
    feed(reloaded, order[half:])
    assert fingerprint(reloaded) == fingerprint(straight)


def test_an_event_later_than_the_bound_is_counted_and_still_applied() -> None:
    engine = run(daily_usage("a", days=3, per_day=2), lateness=600)
    before = engine.live.events
    feed(engine, [usage("very-late", "a", T0 + timedelta(hours=1), user_id="user-7")])
    assert engine.late_events == 1 and engine.live.late == 1
    assert engine.live.events == before + 1
    assert any(u for u in engine.live.users if u[1] == (T0 + timedelta(hours=1)).timestamp())


def test_a_duplicate_within_the_window_is_dropped() -> None:
    event = nps("n1", "a", "r1", 2, T0)
    engine = run([event, usage("u", "a", T0 + timedelta(minutes=1)), event])
    assert engine.duplicates == 1 and engine.live.events == 2


def test_a_very_busy_account_settles_early_and_keeps_its_state_small() -> None:
    engine = run([usage(f"u{i}", "a", T0 + timedelta(seconds=i)) for i in range(3 * MAX_PENDING)])
    assert len(engine.pending) <= MAX_PENDING + 1
    assert engine.live.events == 3 * MAX_PENDING


def test_an_override_survives_recomputation_until_it_lapses_on_event_time() -> None:
    engine = run(
        [
            group("g", "a", "Acme", seats=10),
            nps("n1", "a", "r1", 1, T0, user_id="u1"),
            nps("n2", "a", "r2", 0, T0, user_id="u2"),
        ]
    )
    assert engine.live.band == "red"
    engine.take_outputs()
    expires = T0 + timedelta(days=7)
    feed(engine, [override("o", "a", T0 + timedelta(hours=1), kind="band", band="green", expires_at=expires)])
    shown = health(engine.live, engine.card)
    assert shown is not None and (shown.band, shown.computed_band) == ("green", "red")
    assert shown.override is not None and shown.override[3] == "exec sponsor confirmed renewal"
    outputs = engine.take_outputs()
    assert outputs.changes[-1].override and outputs.changes[-1].band == "green"
    # While it holds, red is not signalled: the CSM has said the account is fine.
    assert ("entered_red", "cleared") in {(s.signal_type, s.status.value) for _, s in outputs.signals}
    # Computation goes on underneath: a new detractor lowers the computed score, not the shown band.
    feed(engine, [nps("n3", "a", "r3", 0, T0 + timedelta(days=2), user_id="u3")])
    shown = health(engine.live, engine.card)
    assert shown is not None and shown.band == "green" and shown.computed_band == "red"
    # Event time passes the expiry (the partition's watermark, no event of this account): it lapses.
    engine.advance(expires.timestamp() + 1)
    shown = health(engine.live, engine.card)
    assert shown is not None and shown.override is None and shown.band == "red"
    lapsed = engine.take_outputs()
    assert lapsed.changes and lapsed.changes[0].cause.at == expires.timestamp()
    assert ("entered_red", "raised") in {(s.signal_type, s.status.value) for _, s in lapsed.signals}


def test_an_override_can_be_cleared_and_a_score_override_sets_the_band_from_it() -> None:
    engine = run(
        [
            nps("n1", "a", "r1", 2, T0),
            override("o", "a", T0, kind="score", band=None, score=82, expires_at=T0 + timedelta(days=3)),
        ]
    )
    shown = health(engine.live, engine.card)
    assert shown is not None and (shown.score, shown.band) == (82.0, "green")
    feed(engine, [override("c", "a", T0 + timedelta(hours=1), action="clear", kind=None, band=None)])
    shown = health(engine.live, engine.card)
    assert shown is not None and shown.override is None and shown.band == shown.computed_band


def test_the_explanation_of_a_real_scenario() -> None:
    """Acme: six weeks of steady use by 12 of 20 seats, then two quiet weeks, an urgent ticket
    naming a competitor, and a detractor; renewal in 60 days."""
    renewal = (T0 + timedelta(days=56 + 60)).date().isoformat()
    events = [
        group(
            "g",
            "acme",
            "Acme Corp",
            plan="pro",
            mrr=2_000,
            seats=20,
            renewal_date=renewal,
            payment_status="current",
        )
    ]
    events += daily_usage("acme", days=42, per_day=36, users=12)
    events += daily_usage("acme", days=14, per_day=6, users=3, start=T0 + timedelta(days=42), prefix="q")
    events += [
        ticket(
            "t1",
            "acme",
            "T-77",
            "open",
            T0 + timedelta(days=53),
            priority="urgent",
            subject="Exports failing since the upgrade",
            comment="Evaluating Vitally instead",
        ),
        nps("n1", "acme", "r1", 4, T0 + timedelta(days=55), comment="Exports keep failing", user_id="user-2"),
    ]
    engine = run(events, account_id="acme")
    shown = health(engine.live, engine.card)
    assert shown is not None
    words = {f.measure: f.detail for f in shown.factors}
    # 252 events a week for six weeks, then 42: the week-long memory has mostly forgotten the
    # busy weeks (42 + 210 / 4 = 94.5 a week, plus the warm-up correction), the four-week one not.
    assert words["usage_trend"] == (
        "product usage down 43% vs the account's 4-week baseline (99 events a week against 174)"
    )
    assert words["active_users"] == "3 of 20 seats active in the last 7 days (15%)"
    assert words["open_tickets"] == "1 open ticket (1 high priority or escalated), oldest opened 2 days ago"
    assert words["nps"] == "latest NPS response 4 (detractor)"
    assert words["payment"] == "payments current"
    assert words["recency"] == "last product activity today"
    assert words["csat"] == "no CSAT response yet: left out"
    # 15 + 25 + 10 + 20 + 10 + 5 + 5 + 5 of the standard weights have data (csat, ces do not).
    assert (shown.segment, shown.score, shown.band) == ("standard", 55.0, "yellow")
    assert abs(sum(f.contribution for f in shown.factors) - 55.0) < 0.1  # rounded contributions
    assert [f.measure for f in shown.factors[:3]] == ["nps", "usage_trend", "active_users"]
    assert set(engine.emitted) == {
        "usage_decline",
        "high_severity_ticket",
        "detractor_response",
        "competitor_mentioned",
        "renewal_at_risk",
        "score_drop",
        "band_dropped",
    }
