"""Migration 0005_alerts on real PostgreSQL: the open alerts an account had per signal type
become one, with every signal type as one of its reasons; and back down again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from alembic import command
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from services.alerts.delivery.outbox import NewDelivery, Purpose
from services.alerts.store import alert_records
from services.alerts.store import deliveries as delivery_store
from services.alerts.store import tables as alert_tables
from shared.db import alembic_config, create_engine, session_factory
from tests.alerts.support import T0
from tests.support.infra import Infra


def alert_row(
    account_id: str, signal_type: str, severity: str, minutes: int, **extra: Any
) -> dict[str, Any]:
    at = T0 + timedelta(minutes=minutes)
    return {
        "dedupe_key": f"{account_id}:{signal_type}:1",
        "account_id": account_id,
        "signal_type": signal_type,
        "kind": "risk",
        "severity": severity,
        "summary": f"{signal_type} summary",
        "signal_event_id": f"e-{signal_type}",
        "signal": {"signal_type": signal_type, "severity": severity},
        "occurred_at": at,
        "created_at": at,
        "state": "open",
        "occurrences": 1,
        "last_signal_at": at,
        "opened_at": at,
        "reopened_count": 0,
        "notified_severity": severity,
        "last_notified_at": at,
        **extra,
    }


async def test_open_alerts_of_one_account_merge_into_its_oldest_with_every_reason(infra: Infra) -> None:
    settings = infra.unmigrated_settings()
    config = alembic_config(settings.database_url)
    await asyncio.to_thread(command.upgrade, config, "0004_alerts")
    engine = create_engine(settings)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            insert_alert = alert_records.insert_alert
            oldest = await insert_alert(session, alert_row("acme", "usage_decline", "medium", 0))
            worse = await insert_alert(session, alert_row("acme", "detractor_response", "high", 2))
            gone = await alert_records.insert_alert(
                session, alert_row("acme", "ticket_spike", "low", -60, state="resolved", resolved_at=T0)
            )
            alone = await alert_records.insert_alert(session, alert_row("globex", "payment_issue", "high", 1))
            await delivery_store.insert_deliveries(
                session,
                [
                    NewDelivery(
                        f"alert:{worse}:alert:1:email:jane@example.com",
                        Purpose.ALERT,
                        "email",
                        "jane@example.com",
                        T0,
                        T0,
                        alert_id=worse,
                    ),
                ],
            )

        await asyncio.to_thread(command.upgrade, config, "heads")

        async with sessions() as session:
            alerts = {r["id"]: r for r in (await session.execute(select(alert_tables.alerts))).mappings()}
            reasons = (await session.execute(select(alert_tables.alert_reasons))).mappings().all()
            [delivery] = (await session.execute(select(alert_tables.alert_deliveries))).mappings().all()
        assert sorted((r["alert_id"], r["signal_type"], r["state"]) for r in reasons) == sorted(
            [
                (oldest, "usage_decline", "active"),
                (oldest, "detractor_response", "active"),
                (gone, "ticket_spike", "cleared"),
                (alone, "payment_issue", "active"),
            ]
        )
        keeper = alerts[oldest]
        assert (keeper["state"], keeper["severity"], keeper["notified_severity"], keeper["occurrences"]) == (
            "open",
            "high",
            "high",
            2,
        )
        assert keeper["last_signal_at"] == T0 + timedelta(minutes=2)
        merged = alerts[worse]
        assert (merged["state"], merged["resolved_reason"]) == ("resolved", f"merged into alert {oldest}")
        assert (delivery["status"], delivery["last_response"]) == (
            "cancelled",
            "not sent: merged into the account's one open alert",
        )
        assert alerts[alone]["state"] == "open" and alerts[gone]["state"] == "resolved"

        # One open alert per account and kind is now the rule the database keeps.
        with pytest.raises(IntegrityError, match="uq_alerts_one_open"):
            async with sessions() as session, session.begin():
                await alert_records.insert_alert(session, alert_row("acme", "champion_change", "high", 3))

        await asyncio.to_thread(command.downgrade, config, "0005_alerts-1")
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            revisions = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
        assert "alert_reasons" not in tables and "alerts" in tables
        assert "0004_alerts" in revisions and "0005_alerts" not in revisions
    finally:
        await engine.dispose()
