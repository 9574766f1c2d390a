"""Helpers for the alerts service tests: events to publish, the app on a manual clock, polling."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.app import AlertsRuntime, create_app
from services.alerts.clock import Clock
from services.alerts.routing.config import RoutingConfig
from services.alerts.store import alert_records
from shared.events import Envelope, EventType, RiskSignalPayload, Severity, TraitsPayload, utcnow
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.support.apps import serving

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
API_TOKEN = "alerts-api-token-for-tests"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def group_event(account_id: str, traits: dict[str, Any], at: datetime = T0) -> Envelope:
    return Envelope(
        event_id=f"g-{uuid.uuid4()}",
        type=EventType.GROUP,
        account_id=account_id,
        user_id="u1",
        occurred_at=at,
        received_at=utcnow(),
        source="test",
        payload=TraitsPayload(traits=traits, group_id=account_id).model_dump(mode="json"),
    )


def signal(
    account_id: str,
    signal_type: str,
    key: str,
    *,
    severity: Severity = Severity.HIGH,
    status: str = "raised",
    summary: str | None = None,
    at: datetime = T0,
    **fields: Any,
) -> Envelope:
    payload = RiskSignalPayload.model_validate(
        {
            "signal_type": signal_type,
            "severity": severity,
            "status": status,
            "dedupe_key": f"{account_id}:{signal_type}:{key}",
            "summary": summary or f"{signal_type} ({key})",
            **fields,
        }
    )
    return Envelope(
        event_id=f"s-{uuid.uuid4()}",
        type=EventType.RISK_SIGNAL,
        account_id=account_id,
        occurred_at=at,
        received_at=utcnow(),
        source="scoring",
        payload=payload.model_dump(mode="json"),
    )


@dataclass
class Running:
    client: httpx.AsyncClient
    runtime: AlertsRuntime
    clock: Clock
    publisher: EventPublisher

    async def publish(self, *events: Envelope) -> None:
        await self.publisher.publish(list(events))

    async def tick(self) -> dict[str, int]:
        """One scheduler pass at the manual clock's time, then let the dispatcher look."""
        done = await self.runtime.scheduler.run_once()
        self.runtime.dispatcher.wake()
        return done

    async def alerts(self, account_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/v1/accounts/{account_id}/alerts", headers=AUTH)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()["alerts"]
        return found

    async def wait(
        self, account_id: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            alerts = await self.alerts(account_id)
            if done(alerts):
                return alerts
            if time.monotonic() > deadline:
                raise AssertionError(f"alerts of {account_id} never reached the expected state: {alerts}")
            await asyncio.sleep(0.1)

    async def metrics(self) -> str:
        return (await self.client.get("/metrics")).text


@asynccontextmanager
async def running(settings: Settings, config: RoutingConfig, clock: Clock) -> AsyncIterator[Running]:
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    await publisher.start()
    app = create_app(settings, clock=clock, config=config)
    try:
        async with serving(app) as client:
            yield Running(client, app.state.alerts, clock, publisher)
    finally:
        await publisher.stop()


def signals_of(alert: dict[str, Any]) -> list[str]:
    return [s["outcome"] for s in alert["signals"]]


def sent(alert: dict[str, Any], purpose: str = "alert") -> list[dict[str, Any]]:
    return [d for d in alert["deliveries"] if d["purpose"] == purpose and d["status"] == "sent"]


def metric(text: str, sample: str) -> float:
    """The value of one sample (`name{labels}`) in a /metrics page; 0 if absent. Metrics are
    per process and tests share one, so compare values before and after."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.split()[-1])
    return 0.0


async def insert_open_alert(
    session: AsyncSession, *, account_id: str, dedupe_key: str, severity: Severity, summary: str,
    event_id: str, at: datetime, segment: str | None = None,
) -> tuple[int, RiskSignalPayload]:
    """An open usage_decline alert row as the consumer would write it; its id and its signal."""
    signal = RiskSignalPayload(signal_type="usage_decline", severity=severity,
                               dedupe_key=dedupe_key, summary=summary)
    row: dict[str, Any] = {
        "dedupe_key": dedupe_key, "account_id": account_id, "signal_type": "usage_decline",
        "kind": "risk", "severity": severity.value, "summary": summary, "signal_event_id": event_id,
        "signal": signal.model_dump(mode="json"), "occurred_at": at, "created_at": at,
        "state": "open", "occurrences": 1, "last_signal_at": at, "opened_at": at,
        "reopened_count": 0,
    }
    if segment is not None:
        row["segment"] = segment
    return await alert_records.insert_alert(session, row), signal
