"""Peers: an account's usage level placed among its segment's accounts on the same partition."""

from __future__ import annotations

from datetime import timedelta

from services.scoring.engine import AccountEngine, Cause
from services.scoring.model import DAY, Competitors, Model, bump, to_entry
from services.scoring.peers import PEER_FORGET, PEER_SAMPLE, PeerTable
from services.scoring.scorecard import health
from shared.events import Envelope
from tests.scoring.events import DEFAULT_CARD, T0, daily_usage, outcome

COMPETITORS = Competitors(DEFAULT_CARD.competitors)


def fold_together(streams: dict[str, list[Envelope]], peers: PeerTable | None) -> dict[str, AccountEngine]:
    """The accounts' events folded in event-time order, sharing one partition's peers."""
    engines = {a: AccountEngine(a, DEFAULT_CARD, 600.0, peers=peers) for a in streams}
    merged = sorted((e for s in streams.values() for e in s), key=lambda e: (e.occurred_at, e.event_id))
    for event in merged:
        entry = to_entry(event, DEFAULT_CARD, COMPETITORS)
        assert entry is not None and event.account_id is not None
        engines[event.account_id].add(entry, Cause(event.event_id, event.type.value, entry.t))
    return engines


def busy_and_quiet(accounts: int, days: int = 30) -> dict[str, list[Envelope]]:
    """`accounts` steady accounts, busier by number; account 0 uses the product twice a day."""
    return {
        f"acct-{n:03d}": daily_usage(f"acct-{n:03d}", days=days, per_day=2 + 2 * n) for n in range(accounts)
    }


def model_with_usage(first: float, last: float, per_day: int) -> Model:
    model = Model()
    model.first_usage, model.last_usage = first, last
    at = first
    while at <= last:
        for _ in range(per_day):
            model.u_base = bump(model.u_base, at, 28 * DAY)
        at += DAY
    return model


def test_a_steady_quiet_account_scores_below_its_busier_peers() -> None:
    engines = fold_together(busy_and_quiet(30), PeerTable())
    quiet = health(engines["acct-000"].live, DEFAULT_CARD)
    busy = health(engines["acct-029"].live, DEFAULT_CARD)
    assert quiet is not None and busy is not None
    peer_quiet = next(f for f in quiet.factors if f.measure == "peer_usage")
    peer_busy = next(f for f in busy.factors if f.measure == "peer_usage")
    assert peer_quiet.value is not None and peer_busy.value is not None
    assert peer_quiet.value < 5 < 95 < peer_busy.value
    assert "below the segment median" in peer_quiet.detail and "30 peer accounts" in peer_quiet.detail
    assert "above the segment median" in peer_busy.detail
    # Steady usage: on its own past alone the quiet account would look as healthy as the busy one.
    assert quiet.score < busy.score - 20


def test_without_peers_or_with_few_the_measure_is_left_out() -> None:
    alone = fold_together(busy_and_quiet(1), None)["acct-000"].live
    few = fold_together(busy_and_quiet(5), PeerTable())["acct-000"].live
    for model in (alone, few):
        shown = health(model, DEFAULT_CARD)
        assert shown is not None
        factor = next(f for f in shown.factors if f.measure == "peer_usage")
        assert factor.value is None and "left out" in factor.detail


def test_within_a_day_the_order_of_peers_does_not_change_a_place() -> None:
    start = T0.timestamp()
    models = {f"a{n}": model_with_usage(start, start + 20 * DAY, 1 + n) for n in range(40)}
    now = start + 20 * DAY + 3600
    places = []
    for order in (sorted(models), sorted(models, reverse=True)):
        table = PeerTable()
        for account in order:
            table.place(account, "standard", models[account], now - DAY)  # yesterday's levels
        places.append({a: table.place(a, "standard", models[a], now) for a in order})
    assert places[0] == places[1]
    assert places[0]["a0"] is not None and places[0]["a0"][0] < 0.05


def test_the_table_is_bounded_and_survives_encoding() -> None:
    start = T0.timestamp()
    table = PeerTable()
    for n in range(PEER_SAMPLE * 3):
        model = model_with_usage(start, start + 15 * DAY, 1 + n % 7)
        table.place(f"acct-{n}", "standard", model, start + 15 * DAY)
    assert len(table.live["standard"]) == PEER_SAMPLE
    again = PeerTable.decode(table.encode())
    later = start + 16 * DAY
    probe = model_with_usage(start, start + 15 * DAY, 3)
    assert again.place("probe", "standard", probe, later) == table.place("probe", "standard", probe, later)


def test_churned_and_long_idle_accounts_leave_the_peers() -> None:
    streams = busy_and_quiet(25)
    churned_at = T0 + timedelta(days=29, hours=23)
    streams["acct-024"].append(outcome("churn", "acct-024", "Account Churned", churned_at))
    table = PeerTable()
    fold_together(streams, table)
    assert "acct-024" not in table.live["standard"] and "acct-023" in table.live["standard"]
    last = T0.timestamp() + 30 * DAY
    much_later = last + PEER_FORGET + DAY
    table.place("late", "standard", model_with_usage(last, much_later, 1), much_later)
    assert set(table.live["standard"]) == {"late"}
