"""The ChurnSim replay on the tiny shipped dataset: what ingest would be sent is valid, in
order, attributed, and its outcomes agree with the subscription table they come from."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bench.churnsim.dataset import (
    TINY_DATASET_DIR,
    ChurnSimDataset,
    Subscription,
    billing_periods,
    churn_dates,
    load,
    recent_shift_days,
    segment_messages,
    shifted,
)
from services.ingest.segment import GroupMessage, TrackMessage, explicit_account, occurred_at
from services.ingest.validation import Limits, validate_batch
from shared.account_facts import AccountFacts, OutcomeEvent
from shared.settings import Settings

DEFAULTS = Settings.model_fields
LIMITS = Limits(max_event_bytes=DEFAULTS["max_event_bytes"].default,
                max_batch_items=DEFAULTS["max_batch_items"].default)


@pytest.fixture(scope="module")
def dataset() -> ChurnSimDataset:
    return load(TINY_DATASET_DIR)


@pytest.fixture(scope="module")
def messages(dataset: ChurnSimDataset) -> list[dict[str, Any]]:
    return list(segment_messages(dataset))


def _at(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))


def _outcomes(messages: list[dict[str, Any]], outcome: OutcomeEvent) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "track" and OutcomeEvent.of(m["event"]) is outcome]


def test_the_tiny_dataset_is_what_its_meta_says(dataset: ChurnSimDataset) -> None:
    assert dataset.meta["rows"]["events"] == len(dataset.events)
    assert dataset.meta["rows"]["subscriptions"] == len(dataset.subscriptions)
    assert dataset.meta["accounts"] == len(dataset.accounts)
    assert 150 <= len(dataset.accounts) <= 300
    assert dataset.meta["licence"].startswith("MIT")
    assert sum(p.stat().st_size for p in TINY_DATASET_DIR.iterdir()) < 2 << 20


def test_every_message_passes_ingests_own_batch_validation(messages: list[dict[str, Any]]) -> None:
    # Dated recently, as a replay sends them: ChurnSim's 2020 is older than ingest's window.
    messages = list(shifted(messages, recent_shift_days(messages, datetime.now(UTC))))
    parsed = []
    for start in range(0, len(messages), LIMITS.max_batch_items):
        parsed.extend(validate_batch({"batch": messages[start:start + LIMITS.max_batch_items]}, LIMITS))
    assert len(parsed) == len(messages)
    received = datetime.now(UTC)
    for item in parsed:
        # Every message names its account itself and carries its own event time.
        assert explicit_account(item.message) == (item.raw.get("groupId") or item.raw["context"]["groupId"])
        assert occurred_at(item.message, received) == _at(item.raw)
        assert isinstance(item.message, TrackMessage | GroupMessage)


def test_messages_come_in_event_time_order_with_unique_ids(messages: list[dict[str, Any]]) -> None:
    times = [_at(m) for m in messages]
    assert times == sorted(times)
    assert len({m["messageId"] for m in messages}) == len(messages)


def test_the_replay_is_deterministic(dataset: ChurnSimDataset, messages: list[dict[str, Any]]) -> None:
    assert list(segment_messages(dataset)) == messages


def test_one_usage_track_per_exported_event(dataset: ChurnSimDataset, messages: list[dict[str, Any]]) -> None:
    usage = [m for m in messages if m["type"] == "track" and OutcomeEvent.of(m["event"]) is None]
    assert len(usage) == len(dataset.events)
    assert Counter(m["event"] for m in usage) == Counter(e.event_type for e in dataset.events)


def test_churn_events_are_the_subscription_ends_without_successor(
        dataset: ChurnSimDataset, messages: list[dict[str, Any]]) -> None:
    labels = churn_dates(dataset)
    assert labels, "the tiny dataset should contain churn"
    churned = {int(m["context"]["groupId"]): _at(m).date()
               for m in _outcomes(messages, OutcomeEvent.ACCOUNT_CHURNED)}
    assert churned == labels
    ends: dict[int, list[date]] = defaultdict(list)
    starts: dict[int, set[date]] = defaultdict(set)
    for s in dataset.subscriptions:
        ends[s.account_id].append(s.end_date)
        starts[s.account_id].add(s.start_date)
    for account_id, day in labels.items():
        assert day <= dataset.end_date
        assert day in ends[account_id] and day >= max(starts[account_id])
    for account_id, account_ends in ends.items():
        if account_id not in labels:  # still subscribed when the simulation stopped
            assert max(account_ends) > dataset.end_date


def test_no_usage_after_an_account_churned(messages: list[dict[str, Any]]) -> None:
    churned_at: dict[str, datetime] = {}
    for m in messages:
        account = m.get("groupId") or m["context"]["groupId"]
        assert account not in churned_at, f"message for account {account} after its churn: {m}"
        if m["type"] == "track" and OutcomeEvent.of(m["event"]) is OutcomeEvent.ACCOUNT_CHURNED:
            churned_at[account] = _at(m)


def test_group_traits_read_as_plan_mrr_and_renewal_date(
        dataset: ChurnSimDataset, messages: list[dict[str, Any]]) -> None:
    periods = billing_periods(dataset)
    groups = [m for m in messages if m["type"] == "group"]
    assert len(groups) == sum(len(p) for p in periods.values())
    for m in groups:
        facts = AccountFacts.from_traits(m["traits"])
        assert facts.plan and facts.mrr is not None and facts.mrr > 0
        assert facts.renewal_date is not None and facts.renewal_date > _at(m).date()
    # A renewal is reported at every period but an account's first.
    renewed = _outcomes(messages, OutcomeEvent.SUBSCRIPTION_RENEWED)
    assert len(renewed) == sum(len(p) - 1 for p in periods.values())
    first_group: dict[str, datetime] = {}
    for m in groups:
        first_group.setdefault(m["groupId"], _at(m))
    assert all(_at(m) > first_group[m["context"]["groupId"]] for m in renewed)


def _sub(account_id: int, product: str, start: date, end: date, mrr: float,
         units: str | None = None, quantity: float | None = None) -> Subscription:
    return Subscription(account_id, product, start, end, mrr, quantity, units, 1, 0.0)


def test_crm_periods_tell_the_plan_from_add_ons_and_see_a_mid_term_churn() -> None:
    """The crm models' shapes, which the tiny socialnet7 dataset has none of: add-on rows beside
    the plan, and a mid-term churn that shortens only the period's last-written row."""
    jan, feb, apr = (date(2022, m, 1) for m in (1, 2, 4))
    mid_march = date(2022, 3, 15)
    dataset = ChurnSimDataset(
        name="handmade", meta={"end_date": "2022-06-01", "add_ons": ["meetings"]}, accounts=(),
        subscriptions=(
            _sub(1, "basic_mthly", jan, feb, 200, "users", 10), _sub(1, "meetings", jan, feb, 300),
            _sub(1, "premier_mthly", feb, apr, 1100, "users", 100),  # plan row: the renewal date
            _sub(1, "meetings", feb, mid_march, 300),  # the row ChurnSim shortened on churning
            _sub(2, "basic_mthly", jan, feb, 200, "users", 10), _sub(2, "meetings", jan, feb, 300),
            _sub(2, "basic_mthly", feb, date(2022, 7, 1), 200, "users", 10),
        ),
        events=(),
    )
    first, second = billing_periods(dataset)[1]
    assert (first.plan, first.add_ons, first.mrr, first.seats) == ("basic_mthly", ("meetings",), 500, 10)
    assert (second.plan, second.mrr, second.seats, second.end_date) == ("premier_mthly", 1400, 100, mid_march)
    # Account 2's subscription runs past the simulation's end: still a customer, not a churn.
    assert churn_dates(dataset) == {1: mid_march}
    messages = list(segment_messages(dataset))
    churn = _outcomes(messages, OutcomeEvent.ACCOUNT_CHURNED)
    assert [(m["context"]["groupId"], m["timestamp"]) for m in churn] == [("1", "2022-03-15T00:00:00Z")]
    renewed = _outcomes(messages, OutcomeEvent.SUBSCRIPTION_RENEWED)
    assert [m["context"]["groupId"] for m in renewed] == ["1", "2"]
    renewal_traits = [m["traits"] for m in messages if m["type"] == "group" and m["groupId"] == "1"][1]
    assert renewal_traits == {"plan": "premier_mthly", "mrr": 1400.0, "renewal_date": "2022-03-15",
                              "seats": 100}
