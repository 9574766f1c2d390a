"""A ChurnSim dataset as exported by `bench.churnsim.generate`, and its replay as the Segment
messages a product backend would send to Churnwatch's `POST /v1/batch`.

ChurnSim's own semantics, which the replay follows (read from fightchurn 1.2.0's churnsim.py):

- a subscription row is one product for one billing period; a period of an account is the
  rows that start on the same day (the plan, plus any add-ons: `meta.json` names them);
- every period after an account's first is a renewal (on a plan change too);
- an account churned iff its last period ends on or before the simulation's `end_date`: the
  simulator only ends a subscription without a successor when the customer churns; a later
  end is just the renewal date of an account still active when the simulation stopped;
- a churn mid-term shortens only one row of the last period, so that period ends at its
  earliest row's end;
- usage is generated for [period start, period end), so no event falls after the churn;
- an account's MRR for a period is the sum of its rows' `mrr`, as the book sums it.
"""

from __future__ import annotations

import csv
import gzip
import heapq
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import groupby
from pathlib import Path
from typing import Any

from shared.account_facts import OutcomeEvent, Trait

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "bench" / "data"
TINY_DATASET_DIR = REPO_ROOT / "tests" / "data" / "churnsim_tiny"


@dataclass(frozen=True, slots=True)
class Account:
    account_id: int
    channel: str | None
    date_of_birth: date
    country: str | None


@dataclass(frozen=True, slots=True)
class Subscription:
    account_id: int
    product: str
    start_date: date
    end_date: date
    mrr: float
    quantity: float | None
    units: str | None
    bill_period_months: int
    # Informational: ChurnSim's plan rows carry their `mrr` already discounted, and the book
    # sums `mrr` as recorded (listing 3.14), so the account's MRR here does the same.
    discount: float | None


@dataclass(frozen=True, slots=True)
class UsageEvent:
    account_id: int
    occurred_at: datetime
    event_type: str
    user_id: int | None
    value: float | None


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """One account's plan and add-ons for one billing period."""

    account_id: int
    start_date: date
    end_date: date
    plan: str
    add_ons: tuple[str, ...]
    mrr: float
    seats: int | None


@dataclass(frozen=True)
class ChurnSimDataset:
    name: str
    meta: dict[str, Any]
    accounts: tuple[Account, ...]
    subscriptions: tuple[Subscription, ...]
    events: tuple[UsageEvent, ...]  # in event-time order, as exported

    @property
    def end_date(self) -> date:
        """The simulation's end: churn is only observed up to here."""
        return date.fromisoformat(self.meta["end_date"])

    @property
    def held_out(self) -> bool:
        return bool(self.meta.get("held_out", False))


def _optional(text: str) -> str | None:
    return text if text not in ("", "NULL") else None


def _optional_float(text: str) -> float | None:
    value = _optional(text)
    return float(value) if value is not None else None


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def load(directory: Path) -> ChurnSimDataset:
    """Read a dataset directory (meta.json and the three .csv.gz files)."""
    meta: dict[str, Any] = json.loads((directory / "meta.json").read_text())
    accounts = tuple(
        Account(int(r["account_id"]), _optional(r["channel"]), date.fromisoformat(r["date_of_birth"]),
                _optional(r["country"]))
        for r in _rows(directory / "accounts.csv.gz"))
    subscriptions = tuple(
        Subscription(int(r["account_id"]), r["product"], date.fromisoformat(r["start_date"]),
                     date.fromisoformat(r["end_date"]), float(r["mrr"]), _optional_float(r["quantity"]),
                     _optional(r["units"]), int(r["bill_period_months"]), _optional_float(r["discount"]))
        for r in _rows(directory / "subscriptions.csv.gz"))
    # Millions of rows with a few dozen type names: interned, each name is stored once.
    events = tuple(
        UsageEvent(int(r["account_id"]), datetime.fromisoformat(r["event_time"].replace("Z", "+00:00")),
                   sys.intern(r["event_type"]), int(r["user_id"]) if _optional(r["user_id"]) else None,
                   _optional_float(r["value"]))
        for r in _rows(directory / "events.csv.gz"))
    return ChurnSimDataset(directory.name, meta, accounts, subscriptions, events)


def billing_periods(dataset: ChurnSimDataset) -> dict[int, list[BillingPeriod]]:
    """Each account's billing periods, oldest first."""
    add_on_names = set(dataset.meta.get("add_ons", []))
    by_account: dict[int, list[BillingPeriod]] = defaultdict(list)
    ordered = sorted(dataset.subscriptions, key=lambda s: (s.account_id, s.start_date, s.product))
    for (account_id, start), group in groupby(ordered, key=lambda s: (s.account_id, s.start_date)):
        rows = list(group)
        plans = [s for s in rows if s.product not in add_on_names] or rows
        plan = plans[0]
        seats = plan.quantity if plan.units == "users" else None
        by_account[account_id].append(BillingPeriod(
            account_id=account_id,
            start_date=start,
            end_date=min(s.end_date for s in rows),
            plan=plan.product,
            add_ons=tuple(s.product for s in rows if s is not plan),
            mrr=round(sum(s.mrr for s in rows), 2),
            seats=int(seats) if seats is not None else None,
        ))
    return dict(by_account)


def churn_dates(dataset: ChurnSimDataset) -> dict[int, date]:
    """Labels: the day each churned account's subscription ended with no successor."""
    return {account_id: periods[-1].end_date
            for account_id, periods in billing_periods(dataset).items()
            if periods[-1].end_date <= dataset.end_date}


# --- replay as Segment messages -------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _user(account_id: int, user_id: int | None) -> str:
    # ChurnSim's user ids count from 0 within each account: made unique across accounts.
    return f"{account_id}-user-{user_id or 0}"


def _lifecycle_messages(dataset: ChurnSimDataset) -> list[tuple[datetime, int, int, dict[str, Any]]]:
    """group at each period start, `subscription renewed` at each renewal, `account churned`."""
    churned = churn_dates(dataset)
    out: list[tuple[datetime, int, int, dict[str, Any]]] = []
    for account_id, periods in billing_periods(dataset).items():
        group_id = str(account_id)
        owner = _user(account_id, 0)
        for index, period in enumerate(periods):
            at = _midnight(period.start_date)
            traits: dict[str, Any] = {
                Trait.PLAN.value: period.plan,
                Trait.MRR.value: period.mrr,
                Trait.RENEWAL_DATE.value: period.end_date.isoformat(),
            }
            if period.seats is not None:
                traits[Trait.SEATS.value] = period.seats
            if index == 0:
                traits[Trait.CREATED_AT.value] = _iso(at)
            else:
                # The outcome first, then the new period's traits: the order a billing system
                # reports them in (the renewal happened, here is what was renewed).
                out.append((at, account_id, 0, {
                    "type": "track", "event": OutcomeEvent.SUBSCRIPTION_RENEWED.value,
                    "userId": owner, "context": {"groupId": group_id},
                    "properties": {"plan": period.plan, "mrr": period.mrr,
                                   "renewal_date": period.end_date.isoformat()},
                    "timestamp": _iso(at),
                    "messageId": f"churnsim-{dataset.name}-renewed-{account_id}-{index}",
                }))
            out.append((at, account_id, 1, {
                "type": "group", "groupId": group_id, "userId": owner, "traits": traits,
                "timestamp": _iso(at),
                "messageId": f"churnsim-{dataset.name}-group-{account_id}-{index}",
            }))
        if account_id in churned:
            at = _midnight(churned[account_id])
            out.append((at, account_id, 2, {
                "type": "track", "event": OutcomeEvent.ACCOUNT_CHURNED.value,
                "userId": owner, "context": {"groupId": group_id},
                "properties": {"plan": periods[-1].plan, "mrr": periods[-1].mrr},
                "timestamp": _iso(at),
                "messageId": f"churnsim-{dataset.name}-churned-{account_id}",
            }))
    out.sort(key=lambda item: item[:3])
    return out


def _usage_messages(dataset: ChurnSimDataset) -> Iterator[tuple[datetime, dict[str, Any]]]:
    for index, event in enumerate(dataset.events):
        message: dict[str, Any] = {
            "type": "track", "event": event.event_type,
            "userId": _user(event.account_id, event.user_id),
            "context": {"groupId": str(event.account_id)},
            "properties": {} if event.value is None else {"value": event.value},
            "timestamp": _iso(event.occurred_at),
            # The export's row order is fixed (sorted), so the row number is a stable id.
            "messageId": f"churnsim-{dataset.name}-event-{index}",
        }
        yield event.occurred_at, message


def segment_messages(dataset: ChurnSimDataset) -> Iterator[dict[str, Any]]:
    """Every message, in event-time order; at the same instant lifecycle messages come first.

    Usage is attributed by `context.groupId` (ingest's explicit attribution), so no message
    depends on an earlier group call having been seen.
    """
    lifecycle = ((at, message) for at, _, _, message in _lifecycle_messages(dataset))
    # heapq.merge is stable: on equal times the first iterable's items come first.
    for _, message in heapq.merge(lifecycle, _usage_messages(dataset), key=lambda item: item[0]):
        yield message


def recent_shift_days(messages: Iterable[dict[str, Any]], now: datetime) -> int:
    """Whole weeks that bring the replay's last message to about a week before `now`: ingest
    refuses events older than its window (five years by default), and ChurnSim dates from 2020."""
    last = max(datetime.fromisoformat(m["timestamp"]) for m in messages)
    return max(0, (now - last).days // 7 * 7 - 7)


def shifted(messages: Iterable[dict[str, Any]], days: int) -> Iterator[dict[str, Any]]:
    """The same messages `days` later. By whole weeks every measure stays the same: ticks keep
    their second of the day, snapshot moments their weekday."""
    delta = timedelta(days=days)
    for message in messages:
        moved = dict(message)
        moved["timestamp"] = _iso(datetime.fromisoformat(message["timestamp"]) + delta)
        for bag in ("traits", "properties"):
            values = message.get(bag)
            if isinstance(values, dict) and isinstance(values.get(Trait.RENEWAL_DATE.value), str):
                renewal = date.fromisoformat(values[Trait.RENEWAL_DATE.value]) + delta
                moved[bag] = {**values, Trait.RENEWAL_DATE.value: renewal.isoformat()}
        yield moved
