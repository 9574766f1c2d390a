"""A CSM's book as alerts knows it: which accounts each CSM owns (their `csm_email` trait) and
each account's unresolved alerts. The console reads it to show a CSM only their accounts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.lifecycle.transitions import AlertState
from services.alerts.routing.config import rank
from services.alerts.store.tables import account_contacts, alerts
from shared.events import Severity


async def owned_accounts(conn: AsyncConnection, *, csm_email: str | None, account_ids: list[str],
                         limit: int) -> list[dict[str, Any]]:
    """Accounts (by owner and/or id), each with its unresolved alerts, most severe first."""
    query = select(account_contacts.c.account_id, account_contacts.c.account_name,
                   account_contacts.c.csm_email)
    if csm_email is not None:
        query = query.where(func.lower(account_contacts.c.csm_email) == csm_email.lower())
    if account_ids:
        query = query.where(account_contacts.c.account_id.in_(account_ids))
    rows = [dict(r) for r in (await conn.execute(query.order_by(account_contacts.c.account_id)
                                                 .limit(limit))).mappings()]
    if not rows:
        return []
    unresolved = await conn.execute(
        select(alerts.c.id, alerts.c.account_id, alerts.c.signal_type, alerts.c.severity, alerts.c.summary,
               alerts.c.state, alerts.c.opened_at)
        .where(alerts.c.account_id.in_([r["account_id"] for r in rows]),
               alerts.c.state != AlertState.RESOLVED.value)
    )
    by_account: dict[str, list[dict[str, Any]]] = {}
    for alert in unresolved.mappings():
        by_account.setdefault(alert["account_id"], []).append(dict(alert))
    def most_severe_newest(alert: dict[str, Any]) -> tuple[int, float]:
        return -rank(Severity(alert["severity"])), -alert["opened_at"].timestamp()

    for row in rows:
        open_alerts = sorted(by_account.get(row["account_id"], []), key=most_severe_newest)
        row["open_alerts"] = [{k: v for k, v in a.items() if k != "account_id"} for a in open_alerts]
    return rows
