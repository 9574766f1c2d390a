"""What the pages show, made from the APIs' answers: pure functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from services.console.charts import Chart, Point, score_chart

BANDS = ("red", "yellow", "green")


@dataclass(frozen=True)
class BookRow:
    account_id: str
    name: str
    band: str
    score: float
    renewal_date: date | None
    mrr: float | None
    owner: str | None
    top_alert: str | None
    open_alerts: int
    signals: list[str]


def book_rows(scored: list[dict[str, Any]], owners: list[dict[str, Any]]) -> list[BookRow]:
    """One row per scored account, riskiest first, with its owner and most severe open alert."""
    by_id = {o["account_id"]: o for o in owners}
    rows = []
    for account in sorted(scored, key=lambda a: (a["score"], a["account_id"])):
        owner = by_id.get(account["account_id"], {})
        alerts = owner.get("open_alerts", [])
        rows.append(BookRow(
            account_id=account["account_id"],
            name=account.get("account_name") or owner.get("account_name") or account["account_id"],
            band=account["band"], score=account["score"],
            renewal_date=date.fromisoformat(account["renewal_date"]) if account.get("renewal_date") else None,
            mrr=account.get("mrr"), owner=owner.get("csm_email"),
            top_alert=alerts[0]["summary"] if alerts else None, open_alerts=len(alerts),
            signals=list(account.get("open_signals") or []),
        ))
    return rows


@dataclass(frozen=True)
class FactorLine:
    measure: str
    detail: str
    value: float | None
    contribution: float


@dataclass(frozen=True)
class AlertLine:
    id: int
    severity: str
    state: str
    summary: str
    opened_at: datetime
    resolved_at: datetime | None


@dataclass(frozen=True)
class AccountView:
    account_id: str
    name: str
    band: str
    score: float
    computed_score: float | None
    segment: str | None
    renewal_date: str | None
    top_factors: list[str]
    factors: list[FactorLine]
    open_signals: list[str]
    trend: list[dict[str, Any]]
    override: dict[str, Any] | None
    chart: Chart | None
    changes: list[Point]
    open_alerts: list[AlertLine]
    past_alerts: list[AlertLine]


def _moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _change_reason(change: dict[str, Any]) -> str:
    factors = change.get("factors") or []
    if factors:
        return str(factors[0]["detail"])
    return f"{change['cause_type']} event"


def account_view(health: dict[str, Any], history: list[dict[str, Any]],
                 alerts: list[dict[str, Any]]) -> AccountView:
    points = [Point(_moment(c["occurred_at"]), float(c["score"]), c["band"], _change_reason(c))
              for c in history]
    lines = [AlertLine(a["id"], a["severity"], a["state"], a["summary"], _moment(a["opened_at"]),
                       _moment(a["resolved_at"]) if a.get("resolved_at") else None) for a in alerts]
    return AccountView(
        account_id=health["account_id"],
        name=health.get("account_name") or health["account_id"],
        band=health["band"], score=health["score"], computed_score=health.get("computed_score"),
        segment=health.get("segment"), renewal_date=health.get("renewal_date"),
        top_factors=list(health.get("top_factors") or []),
        factors=[FactorLine(f["measure"], f["detail"], f.get("value"), f["contribution"])
                 for f in health.get("factors") or []],
        open_signals=sorted(health.get("open_signals") or {}),
        trend=list(health.get("trend") or []),
        override=health.get("override"),
        chart=score_chart(points),
        changes=sorted(points, key=lambda p: p.at, reverse=True)[:20],
        open_alerts=[a for a in lines if a.state != "resolved"],
        past_alerts=[a for a in lines if a.state == "resolved"][:10],
    )
