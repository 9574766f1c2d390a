"""The simulated customer base: reproducible, readable by Churnwatch, and shaped like real churn."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from statistics import mean

import pytest

from shared.account_facts import AccountFacts, OutcomeEvent, unreadable_traits
from shared.events import SURVEY_SCORE_RANGES, SurveyType, TicketPriority, TicketStatus
from simulator import catalog
from simulator.model import SimDay, Simulation, SimulationConfig

BASE = SimulationConfig(accounts=60, days=150, seed=3, usage_scale=0.2)


@pytest.fixture(scope="module")
def run() -> tuple[list[SimDay], Simulation]:
    simulation = Simulation(BASE)
    return list(simulation.days()), simulation


def stream_of(config: SimulationConfig) -> list[tuple[object, ...]]:
    return [(e.at, e.account_id, e.channel, e.body) for day in Simulation(config).days() for e in day.events]


def test_the_same_seed_gives_the_same_events_and_truth() -> None:
    config = SimulationConfig(accounts=8, days=40, seed=42)
    assert stream_of(config) == stream_of(config)
    first, second = Simulation(config), Simulation(config)
    assert [d.truth for d in first.days()] == [d.truth for d in second.days()]
    assert first.accounts() == second.accounts()
    assert stream_of(config) != stream_of(SimulationConfig(accounts=8, days=40, seed=43))


def test_an_account_story_does_not_depend_on_how_many_others_there_are() -> None:
    small = [e for e in stream_of(SimulationConfig(accounts=2, days=20, seed=5)) if e[1] == "acct-00002"]
    large = [e for e in stream_of(SimulationConfig(accounts=6, days=20, seed=5)) if e[1] == "acct-00002"]
    assert small == large


def test_invalid_configurations_are_refused() -> None:
    with pytest.raises(ValueError):
        SimulationConfig(accounts=0)
    with pytest.raises(ValueError):
        SimulationConfig(usage_scale=0)


def test_day_one_introduces_every_account_with_readable_traits_and_one_champion(
        run: tuple[list[SimDay], Simulation]) -> None:
    days, _ = run
    groups = [e for e in days[0].events if e.channel == "segment" and e.body["type"] == "group"]
    assert len(groups) == BASE.accounts
    users: dict[str, set[str]] = defaultdict(set)
    for event in days[0].events:
        if event.channel == "segment" and event.body["type"] == "identify":
            users[event.account_id].add(event.body["userId"])
    for group in groups:
        traits = group.body["traits"]
        assert unreadable_traits(traits) == []
        facts = AccountFacts.from_traits(traits)
        assert facts.plan in {p.name for p in catalog.PLANS}
        assert facts.seats and facts.mrr and facts.renewal_date and facts.csm_email
        assert facts.csm_slack_channel and facts.lifecycle_stage and facts.payment_status
        assert facts.onboarding_started_at and facts.plan_event_limit
        assert facts.champion_user_id in users[group.account_id]  # one of the account's people
        assert group.body["userId"] == facts.champion_user_id


def test_usage_is_lower_on_weekends(run: tuple[list[SimDay], Simulation]) -> None:
    days, _ = run
    per_day = {d.day: sum(1 for e in d.events if e.channel == "segment" and e.body["type"] == "track")
               for d in days}
    weekdays = mean(v for k, v in per_day.items() if k.weekday() < 5)
    weekends = mean(v for k, v in per_day.items() if k.weekday() >= 5)
    assert weekends < 0.4 * weekdays


def test_some_accounts_decline_and_churn_and_churn_ends_their_events(
        run: tuple[list[SimDay], Simulation]) -> None:
    days, simulation = run
    accounts = {a.account_id: a for a in simulation.accounts()}
    churned = [a for a in accounts.values() if a.churned_on]
    assert 0 < len(churned) < len(accounts) / 2
    assert any(a.declines for a in accounts.values())
    assert any(a.renewed_on for a in accounts.values())
    outcomes: dict[str, list[tuple[date, OutcomeEvent]]] = {}
    for day in days:
        for event in day.events:
            if event.channel == "segment" and event.body["type"] == "track":
                outcome = OutcomeEvent.of(event.body["event"])
                if outcome is not None:
                    outcomes.setdefault(event.account_id, []).append((day.day, outcome))
            churned_on = accounts[event.account_id].churned_on
            assert churned_on is None or day.day <= churned_on, "events after churn"
    for account in churned:
        assert (account.churned_on, OutcomeEvent.ACCOUNT_CHURNED) in outcomes[account.account_id]
        assert account.churn_reason in {"not renewed", "cancelled", "non-payment"}


def test_hidden_health_leads_churn(run: tuple[list[SimDay], Simulation]) -> None:
    days, simulation = run
    health = {(t.account_id, t.day): t.health for d in days for t in d.truth}
    churned = [a for a in simulation.accounts() if a.churned_on]
    stayed = [a for a in simulation.accounts() if not a.churned_on]
    at_churn = mean(health[(a.account_id, a.churned_on)] for a in churned if a.churned_on)
    at_end = mean(health[(a.account_id, days[-1].day)] for a in stayed)
    assert at_churn < 0.45 < at_end


def test_leading_signs_come_from_unhealthy_accounts(run: tuple[list[SimDay], Simulation]) -> None:
    days, simulation = run
    health = {(t.account_id, t.day): t.health for d in days for t in d.truth}
    severe: list[float] = []
    routine: list[float] = []
    detractors: list[float] = []
    promoters: list[float] = []
    competitor_mentions = 0
    for day in days:
        for event in day.events:
            h = health.get((event.account_id, event.at.date()))
            if h is None:
                continue
            body = event.body
            if event.channel == "ticket" and body["status"] == "new":
                assert TicketStatus(body["status"]) and TicketPriority(body["priority"])
                if "incident" in body["tags"]:
                    continue  # noise: everyone files those
                (severe if body["priority"] in ("high", "urgent") else routine).append(h)
                competitor_mentions += any(c in body["subject"] for c in catalog.COMPETITORS)
            elif event.channel == "survey":
                assert body["score"] in SURVEY_SCORE_RANGES[SurveyType(body["survey_type"])]
                if body["survey_type"] == "nps":
                    (detractors if body["score"] <= 6 else promoters).append(h)
    assert mean(severe) < mean(routine)
    assert mean(detractors) < mean(promoters)
    assert competitor_mentions > 0
    accounts = simulation.accounts()
    assert sum(len(a.champion_changes) for a in accounts) > 0
    assert sum(len(a.payment_failures) for a in accounts) > 0


def test_champion_changes_and_payment_failures_are_sent_as_group_traits(
        run: tuple[list[SimDay], Simulation]) -> None:
    days, simulation = run
    traits: Counter[str] = Counter()
    for day in days[1:]:
        for event in day.events:
            if event.channel == "segment" and event.body["type"] == "group":
                traits.update(event.body["traits"].keys())
    assert traits["champion_user_id"] == sum(len(a.champion_changes) for a in simulation.accounts())
    assert traits["payment_status"] >= sum(len(a.payment_failures) for a in simulation.accounts())


def test_ids_are_unique_and_ticket_updates_follow_each_other(run: tuple[list[SimDay], Simulation]) -> None:
    days, _ = run
    message_ids = [e.body["messageId"] for d in days for e in d.events if e.channel == "segment"]
    assert len(message_ids) == len(set(message_ids))
    timeline: dict[str, list[str]] = defaultdict(list)
    for day in days:
        for event in day.events:
            if event.channel == "ticket":
                timeline[event.body["ticket_id"]].append(event.body["status"])
                assert event.at.date() == day.day
    for statuses in timeline.values():
        assert statuses == ["new", "open", "solved"][: len(statuses)]


def test_runs_with_different_seeds_never_share_an_id() -> None:
    def ids(seed: int) -> set[str]:
        found = set()
        for day in Simulation(SimulationConfig(accounts=5, days=60, seed=seed)).days():
            for event in day.events:
                body = event.body
                found.add(body.get("messageId") or body.get("event_id") or body["response_id"])
                if event.channel == "ticket":
                    found.add(body["ticket_id"])
        return found

    assert not ids(1) & ids(2)
