"""Weekly risk snapshots taken by the live engine: on the event-time grid, independent of arrival
order within the lateness bound, none after churn; outcomes told once."""

from __future__ import annotations

import random
from datetime import timedelta

from services.scoring.engine import GAP_EDGE_DAYS, AccountEngine
from services.scoring.model import DAY
from services.scoring.risk.features import FIXED, snapshot
from services.scoring.risk.weekly import WEEK, next_moment
from shared.events import Envelope
from tests.scoring.events import T0, daily_usage, engine_for, feed, group, outcome, usage


def stream() -> list[Envelope]:
    events = [group("g", "a", "Acme", seats=5)]
    events += daily_usage("a", days=30, per_day=4, users=3)
    events += [
        usage(f"x-{d}", "a", T0 + timedelta(days=d, hours=5), name="Invite Sent") for d in range(0, 30, 3)
    ]
    return sorted(events, key=lambda e: (e.occurred_at, e.event_id))


def snapshots_of(events: list[Envelope], lateness: float = 600.0) -> dict[float, tuple[object, ...]]:
    engine = feed(engine_for("a", lateness=lateness), events)
    engine.advance(engine.live.clock or 0.0)
    taken = {}
    for s in engine.take_outputs().snapshots:  # a re-take replaces what was taken at that moment
        taken[s.at] = (s.snapshot.fixed, tuple(sorted(s.snapshot.by_name.items())), s.scorecard_score)
    return taken


def test_snapshots_fall_on_the_weekly_grid_from_the_first_event() -> None:
    events = stream()
    taken = snapshots_of(events)
    first = events[0].occurred_at.timestamp()
    last = events[-1].occurred_at.timestamp()
    expected = []
    at = next_moment(first, WEEK)
    while at <= last:
        expected.append(at)
        at += WEEK
    assert sorted(taken) == expected and len(expected) == 4
    assert all(int(at - 4 * DAY) % int(WEEK) == 0 for at in taken)  # Mondays, 00:00 UTC
    # Each is the features of every event before its moment, read at the moment.
    for at, (fixed, by_name, _) in taken.items():
        before = [e for e in events if e.occurred_at.timestamp() < at]
        alone = feed(engine_for("a"), before)
        alone.advance(at - 0.5)
        expected_snap = snapshot(alone.live, at)
        assert fixed == expected_snap.fixed
        assert dict(by_name) == expected_snap.by_name
        assert dict(zip(FIXED, fixed, strict=True))["usage_28d"] > 0
        assert set(dict(by_name)) == {"report built", "invite sent"}


def test_arrival_order_within_the_lateness_bound_does_not_change_the_snapshots() -> None:
    events = stream()
    in_order = snapshots_of(events, lateness=3 * DAY)
    shuffled = list(events)
    # Swap neighbours up to two days apart: late but within the bound, across week boundaries too.
    rng = random.Random(3)
    for i in range(0, len(shuffled) - 8, 3):
        j = i + rng.randrange(1, 8)
        shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
    assert shuffled != events
    assert snapshots_of(shuffled, lateness=3 * DAY) == in_order


def test_no_snapshot_after_churn_and_outcomes_are_told_once() -> None:
    events = stream()
    churned = T0 + timedelta(days=16)
    events = [e for e in events if e.occurred_at < churned]
    events.append(outcome("c", "a", "Account Churned", churned))
    events.append(usage("late-usage", "a", T0 + timedelta(days=40)))
    engine = feed(engine_for("a"), events)
    outputs = engine.take_outputs()
    assert all(s.at <= churned.timestamp() for s in outputs.snapshots)
    assert [at for at in (s.at for s in outputs.snapshots)] == sorted({s.at for s in outputs.snapshots})
    assert outputs.outcomes == [("churned", churned.timestamp())]
    feed(engine, [usage("more", "a", T0 + timedelta(days=41))])
    assert engine.take_outputs().outcomes == []


def test_a_stored_state_keeps_its_place_on_the_grid() -> None:
    events = stream()
    half = len(events) // 2
    whole = snapshots_of(events)
    engine = feed(engine_for("a"), events[:half])
    first_part = {s.at for s in engine.take_outputs().snapshots}
    again = AccountEngine.decode("a", engine.encode(), engine.card, engine.lateness)
    feed(again, events[half:])
    again.advance(again.live.clock or 0.0)
    second_part = {s.at for s in again.take_outputs().snapshots}
    assert first_part | second_part == set(whole) and not first_part & second_part


def test_a_gap_of_millennia_is_snapshotted_near_its_edges_only_and_a_year_in_full() -> None:
    far = T0.replace(year=9000)
    engine = feed(engine_for("a"), [usage("now", "a", T0), usage("far", "a", far)])
    taken = [s.at for s in engine.take_outputs().snapshots]
    assert 0 < len(taken) <= 2 * (GAP_EDGE_DAYS // 7 + 1)
    assert taken == sorted(taken) and taken[-1] <= far.timestamp()
    assert far.timestamp() - taken[-1] <= WEEK and taken[0] - T0.timestamp() <= WEEK
    year = feed(engine_for("a"), [usage("now", "a", T0), usage("later", "a", T0 + timedelta(days=365))])
    assert len(year.take_outputs().snapshots) in (52, 53)
