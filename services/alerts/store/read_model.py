"""The API's read model: an account's alert history and one alert with its children.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from services.alerts.render.reasons import listing
from services.alerts.store.tables import (
    Row,
    alert_actions,
    alert_deliveries,
    alert_delivery_attempts,
    alert_feedback,
    alert_reasons,
    alert_signals,
    alerts,
)


async def account_history(conn: AsyncConnection, account_id: str, limit: int) -> list[Row]:
    alert_rows = (
        (
            await conn.execute(
                select(alerts)
                .where(alerts.c.account_id == account_id)
                .order_by(alerts.c.id.desc())
                .limit(limit)
            )
        )
        .mappings()
        .all()
    )
    return await _with_children(conn, [dict(r) for r in alert_rows])


async def alert_detail(conn: AsyncConnection, alert_id: int) -> Row | None:
    rows = (await conn.execute(select(alerts).where(alerts.c.id == alert_id))).mappings().all()
    found = await _with_children(conn, [dict(r) for r in rows])
    return found[0] if found else None


async def _with_children(conn: AsyncConnection, alert_rows: list[Row]) -> list[Row]:
    ids = [r["id"] for r in alert_rows]
    children: dict[str, dict[int, list[Row]]] = {
        "reasons": {},
        "deliveries": {},
        "signals": {},
        "actions": {},
        "feedback": {},
    }
    if ids:
        for name, table, order in (
            ("reasons", alert_reasons, alert_reasons.c.id),
            ("deliveries", alert_deliveries, alert_deliveries.c.id),
            ("signals", alert_signals, alert_signals.c.id),
            ("actions", alert_actions, alert_actions.c.id),
            ("feedback", alert_feedback, alert_feedback.c.at),
        ):
            rows = (
                (await conn.execute(select(table).where(table.c.alert_id.in_(ids)).order_by(order)))
                .mappings()
                .all()
            )
            for row in rows:
                children[name].setdefault(row["alert_id"], []).append(dict(row))
        delivery_ids = [d["id"] for by_alert in children["deliveries"].values() for d in by_alert]
        log: dict[int, list[Row]] = {}
        if delivery_ids:
            attempts = (
                (
                    await conn.execute(
                        select(alert_delivery_attempts)
                        .where(alert_delivery_attempts.c.delivery_id.in_(delivery_ids))
                        .order_by(alert_delivery_attempts.c.delivery_id, alert_delivery_attempts.c.attempt)
                    )
                )
                .mappings()
                .all()
            )
            for attempt in attempts:
                log.setdefault(attempt["delivery_id"], []).append(dict(attempt))
        for by_alert in children["deliveries"].values():
            for d in by_alert:
                d["attempt_log"] = log.get(d["id"], [])
        for alert_id, reason_rows in children["reasons"].items():
            children["reasons"][alert_id] = [dict(r) for r in listing(reason_rows)]
    return [
        {**r, **{name: by_alert.get(r["id"], []) for name, by_alert in children.items()}} for r in alert_rows
    ]
