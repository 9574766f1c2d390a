"""The reasons of one alert: every signal type active on the account in this episode. Pure.

An account has at most one open alert of each kind (its risk episode, its expansion
opportunity: an upsell does not belong in a message about churn risk). Each raised signal type is a reason of
it, kept up to date by its newest occurrence; a reason clears on its own (with the same clear
hysteresis an alert had), and the alert resolves when every reason has cleared. What a CSM
reads is the list of active reasons, worst first: severity, then the most recently raised.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.alerts.routing.config import rank
from shared.events import Severity


class ReasonState(StrEnum):
    ACTIVE = "active"  # raised, possibly with its clear timer running (`clearing_since`)
    CLEARED = "cleared"


@dataclass(frozen=True)
class Reason:
    signal_type: str
    severity: Severity
    summary: str
    state: ReasonState
    last_signal_at: datetime  # event time of its newest raised occurrence
    clearing_since: datetime | None = None
    signal: Mapping[str, Any] | None = None  # the newest raised occurrence's payload

    @property
    def active(self) -> bool:
        return self.state is ReasonState.ACTIVE

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Reason:
        return cls(
            signal_type=str(row["signal_type"]),
            severity=Severity(row["severity"]),
            summary=str(row["summary"]),
            state=ReasonState(row["state"]),
            last_signal_at=row["last_signal_at"],
            clearing_since=row.get("clearing_since"),
            signal=row.get("signal"),
        )


def worst_first(reasons: Iterable[Reason]) -> list[Reason]:
    """Active reasons by severity, then the most recently raised first; then by name, for a stable order."""
    active = [r for r in reasons if r.active]
    active.sort(key=lambda r: r.signal_type)
    active.sort(key=lambda r: r.last_signal_at, reverse=True)
    active.sort(key=lambda r: rank(r.severity), reverse=True)
    return active


def lead(reasons: Iterable[Reason]) -> Reason | None:
    """The reason an alert is named after: its worst active one."""
    ordered = worst_first(reasons)
    return ordered[0] if ordered else None


def clearing_since(reasons: Sequence[Reason]) -> datetime | None:
    """When the alert's own clear timer started: once every active reason is clearing, from the
    last of them to start (the hysteresis counts from the newest clear); None while one holds."""
    active = [r for r in reasons if r.active]
    if not active or any(r.clearing_since is None for r in active):
        return None
    return max(r.clearing_since for r in active if r.clearing_since is not None)


def listing(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Reason rows as the API lists them: active ones worst first, then the cleared, newest first."""
    by_type = {str(r["signal_type"]): r for r in rows}
    active = [by_type[r.signal_type] for r in worst_first(Reason.of(r) for r in rows)]
    cleared = sorted(
        (r for r in rows if r["state"] != ReasonState.ACTIVE),
        key=lambda r: (r["cleared_at"] or r["last_signal_at"], r["signal_type"]),
        reverse=True,
    )
    return [*active, *cleared]


def alert_columns(reasons: Sequence[Reason]) -> dict[str, Any]:
    """What the alert row shows of its reasons, updated in place whenever one changes: named
    after its worst active reason, as severe as that, clearing once every reason is. Empty when
    no reason is active any more (the alert is then resolved, not updated)."""
    first = lead(reasons)
    if first is None:
        return {}
    columns: dict[str, Any] = {
        "signal_type": first.signal_type,
        "severity": first.severity.value,
        "summary": first.summary,
        "clearing_since": clearing_since(reasons),
    }
    if first.signal is not None:
        columns["signal"] = dict(first.signal)
    return columns


def replaced(reasons: Sequence[Reason], new: Reason) -> list[Reason]:
    """The reasons with `new` in place of the one of its signal type (or added)."""
    return [*(r for r in reasons if r.signal_type != new.signal_type), new]
