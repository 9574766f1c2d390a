"""Weekly snapshots of accounts folded by the live scoring engine, for calibration and backtests.

The events of each account go through the same `AccountEngine` live scoring runs, in event
time, with its daily ticks, so the health score and the features read at each weekly moment
are the ones the live service had then. Pure: the caller brings the events.
"""

from __future__ import annotations

import gc
import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from services.scoring.config import Scorecard
from services.scoring.engine import AccountEngine, Cause
from services.scoring.model import DAY, USAGE, Competitors, UnusableEvent, to_entry
from services.scoring.peers import PeerTable
from services.scoring.risk.features import Snapshot, snapshot
from services.scoring.scorecard import effective
from shared.events import Envelope

WEEK = 7 * DAY


@dataclass(frozen=True)
class Moment:
    """One account at one weekly moment, with the outcome known at the end of the data."""

    account_id: str
    snapshot: Snapshot
    scorecard_score: float | None
    activity_28d: float  # events in the 28 days before (the live path: their 28-day decayed count)
    churned_at: float | None


def weekly(start: float, end: float, every: float = WEEK) -> list[float]:
    """Snapshot moments: every `every` seconds from the first UTC midnight at or after `start`."""
    first = -(-start // DAY) * DAY
    moments: list[float] = []
    at = first + every
    while at <= end:
        moments.append(at)
        at += every
    return moments


def fold_account(
    account_id: str,
    events: Iterable[Envelope],
    moments: list[float],
    card: Scorecard,
    competitors: Competitors,
) -> Iterator[Moment]:
    """One account's weekly moments, folded alone (so with no peers to compare it with)."""
    yield from fold_accounts({account_id: events}, moments, card, competitors, lambda _: 0)


def fold_accounts(
    events_by_account: Mapping[str, Iterable[Envelope]],
    moments: list[float],
    card: Scorecard,
    competitors: Competitors,
    partition_of: Callable[[str], int],
) -> list[Moment]:
    """Every account's weekly moments, folded as live scoring folds its partitions: all events
    in event-time order, daily ticks fired by each partition's watermark, and the peers of the
    scorecard's `peer_usage` shared by the accounts of a partition (`partition_of`).

    Only the live models are read: each engine's outputs (history rows, signals, its own
    snapshots) are dropped as they come, so the memory, and the garbage collector's work over
    it, stays that of the models, not of every change a five-month replay produces."""
    # The caller's events (a million objects) outlive the fold: left out of the collector's
    # full passes, which would otherwise walk them again and again as the models grow.
    gc.freeze()
    try:
        return _fold(events_by_account, moments, card, competitors, partition_of)
    finally:
        gc.unfreeze()


def _fold(
    events_by_account: Mapping[str, Iterable[Envelope]],
    moments: list[float],
    card: Scorecard,
    competitors: Competitors,
    partition_of: Callable[[str], int],
) -> list[Moment]:
    events = sorted(
        (e for stream in events_by_account.values() for e in stream),
        key=lambda e: (e.occurred_at, e.event_id),
    )
    tables: dict[int, PeerTable] = {}
    engines: dict[str, AccountEngine] = {}
    partition_by_account: dict[str, int] = {}
    due: dict[int, list[tuple[float, str]]] = {}
    usage: dict[str, deque[float]] = {}
    taken: dict[str, list[tuple[Snapshot, float | None, int]]] = {}
    pending = iter(moments)
    moment_at = next(pending, None)

    def take(at: float) -> None:
        for account_id, engine in engines.items():
            if engine.live.churned:
                continue
            engine.advance(at)
            engine.take_outputs()
            recent = usage[account_id]
            while recent and recent[0] <= at - 28 * DAY:
                recent.popleft()
            shown, _ = effective(engine.live, card)
            taken[account_id].append((snapshot(engine.live, at), shown, len(recent)))

    for event in events:
        try:
            entry = to_entry(event, card, competitors)
        except UnusableEvent:
            continue
        if entry is None:
            continue
        while moment_at is not None and moment_at < entry.t:
            take(moment_at)
            moment_at = next(pending, None)
        account_id = event.account_id
        assert account_id is not None
        engine = engines.get(account_id)
        if engine is None:
            number = partition_by_account[account_id] = partition_of(account_id)
            table = tables.get(number)
            if table is None:
                table = tables[number] = PeerTable()
            # Its own weekly snapshots are not read (`take` reads the same grid): none taken.
            engine = engines[account_id] = AccountEngine(
                account_id, card, lateness=0.0, snapshot_every=None, peers=table
            )
            usage[account_id] = deque()
            taken[account_id] = []
        else:
            number = partition_by_account[account_id]
        engine.add(entry, Cause(event.event_id, event.type.value, entry.t, event.user_id))
        engine.take_outputs()
        if entry.kind == USAGE:
            usage[account_id].append(entry.t)
        # The partition's watermark (lateness 0: the latest event time) fires its timers.
        heap = due.setdefault(number, [])
        scheduled = engine.next_due()
        if scheduled is not None:
            heapq.heappush(heap, (scheduled, account_id))
        while heap and heap[0][0] <= entry.t:
            at, waiting_id = heapq.heappop(heap)
            waiting = engines[waiting_id]
            if waiting.next_due() == at:
                waiting.advance(entry.t)
                waiting.take_outputs()
                following = waiting.next_due()
                if following is not None:
                    heapq.heappush(heap, (following, waiting_id))
    while moment_at is not None:
        take(moment_at)
        moment_at = next(pending, None)
    result: list[Moment] = []
    for account_id, engine in engines.items():
        churned_at = engine.live.churned_at if engine.live.churned else None
        result += [Moment(account_id, *kept, churned_at) for kept in taken[account_id]]
    return result


@dataclass(frozen=True)
class AlertOutcome:
    """Alerts the fitted risk would have raised on the validation weeks, judged by what followed."""

    alerts: int
    followed_by_churn: int  # within `alert_window_days` of the alert
    churners: int  # accounts that churned inside the validation period
    churners_alerted_early: int  # alerted at least `lead_days` before they churned
    median_lead_days: float | None

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "alerts": self.alerts,
            "precision": round(self.followed_by_churn / self.alerts, 4) if self.alerts else None,
            "churners": self.churners,
            "share_of_churners_alerted_early": (
                round(self.churners_alerted_early / self.churners, 4) if self.churners else None
            ),
            "median_lead_days": self.median_lead_days,
        }


def judge_alerts(
    risk_by_moment: list[tuple[Moment, float]],
    threshold: float,
    validation_from: float,
    observed_until: float,
    *,
    alert_window_days: float = 60,
    lead_days: float = 14,
) -> AlertOutcome:
    """One alert per account and episode: raised when risk first reaches the threshold, open until
    it falls below 80% of it (hysteresis). An alert counts as right if churn follows within
    the window; alerts too recent for the window to have passed are left out."""
    by_account: dict[str, list[tuple[Moment, float]]] = {}
    for moment, risk in risk_by_moment:
        if moment.snapshot.at >= validation_from:
            by_account.setdefault(moment.account_id, []).append((moment, risk))
    alerts = right = churners = early = 0
    leads: list[float] = []
    for rows in by_account.values():
        rows.sort(key=lambda r: r[0].snapshot.at)
        churned_at = rows[0][0].churned_at
        first_alert: float | None = None
        open_alert = False
        for moment, risk in rows:
            if not open_alert and risk >= threshold:
                open_alert = True
                at = moment.snapshot.at
                first_alert = at if first_alert is None else first_alert
                if at + alert_window_days * DAY <= observed_until or churned_at is not None:
                    alerts += 1
                    right += churned_at is not None and churned_at - at <= alert_window_days * DAY
            elif open_alert and risk < 0.8 * threshold:
                open_alert = False
        if churned_at is not None and validation_from <= churned_at <= observed_until:
            churners += 1
            if first_alert is not None:
                lead = (churned_at - first_alert) / DAY
                leads.append(lead)
                early += lead >= lead_days
    leads.sort()
    return AlertOutcome(alerts, right, churners, early, round(leads[len(leads) // 2], 1) if leads else None)
