"""The reasons of one alert: their order, and what the alert row shows of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.alerts.render.reasons import (
    Reason,
    ReasonState,
    alert_columns,
    clearing_since,
    lead,
    listing,
    replaced,
    worst_first,
)
from shared.events import Severity

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def reason(
    signal_type: str,
    severity: Severity,
    minutes: int = 0,
    state: ReasonState = ReasonState.ACTIVE,
    clearing: datetime | None = None,
) -> Reason:
    return Reason(
        signal_type,
        severity,
        f"{signal_type} summary",
        state,
        NOON + timedelta(minutes=minutes),
        clearing,
        {"signal_type": signal_type},
    )


def test_worst_first_is_severity_then_the_newest_and_leaves_out_cleared_reasons() -> None:
    reasons = [
        reason("usage_decline", Severity.MEDIUM, 0),
        reason("detractor_response", Severity.HIGH, 5),
        reason("competitor_mentioned", Severity.MEDIUM, 6),
        reason("champion_change", Severity.HIGH, 1),
        reason("ticket_spike", Severity.HIGH, 9, state=ReasonState.CLEARED),
    ]
    assert [r.signal_type for r in worst_first(reasons)] == [
        "detractor_response",
        "champion_change",
        "competitor_mentioned",
        "usage_decline",
    ]
    first = lead(reasons)
    assert first is not None and first.signal_type == "detractor_response"
    assert lead([reason("ticket_spike", Severity.HIGH, state=ReasonState.CLEARED)]) is None


def test_the_alert_clears_only_once_every_reason_is_clearing_from_the_last_to_start() -> None:
    quiet = reason("usage_decline", Severity.MEDIUM, clearing=NOON)
    nps = reason("detractor_response", Severity.HIGH)
    assert clearing_since([quiet, nps]) is None
    later = NOON + timedelta(minutes=30)
    both = replaced([quiet, nps], reason("detractor_response", Severity.HIGH, clearing=later))
    assert clearing_since(both) == later
    assert clearing_since([]) is None


def test_the_alert_row_is_named_after_its_worst_reason() -> None:
    quiet = reason("usage_decline", Severity.MEDIUM)
    nps = reason("detractor_response", Severity.HIGH, 2)
    assert alert_columns([quiet, nps]) == {
        "signal_type": "detractor_response",
        "severity": "high",
        "summary": "detractor_response summary",
        "clearing_since": None,
        "signal": {"signal_type": "detractor_response"},
    }
    # The high reason cleared: the alert is about what still holds.
    cleared = replaced([quiet, nps], reason("detractor_response", Severity.HIGH, 2, ReasonState.CLEARED))
    assert alert_columns(cleared)["signal_type"] == "usage_decline"
    assert alert_columns(cleared)["severity"] == "medium"
    assert alert_columns([reason("usage_decline", Severity.LOW, state=ReasonState.CLEARED)]) == {}


def test_the_api_lists_active_reasons_worst_first_then_the_cleared_newest_first() -> None:
    def row(signal_type: str, severity: str, minutes: int, state: str = "active") -> dict[str, object]:
        at = NOON + timedelta(minutes=minutes)
        return {
            "signal_type": signal_type,
            "severity": severity,
            "summary": signal_type,
            "state": state,
            "last_signal_at": at,
            "clearing_since": None,
            "cleared_at": at if state == "cleared" else None,
            "signal": {},
        }

    rows = [
        row("usage_decline", "medium", 0),
        row("ticket_spike", "high", 1, "cleared"),
        row("detractor_response", "high", 2),
        row("payment_issue", "low", 3, "cleared"),
    ]
    assert [r["signal_type"] for r in listing(rows)] == [
        "detractor_response",
        "usage_decline",
        "payment_issue",
        "ticket_spike",
    ]
