"""Alerts' HTTP routes: what was raised for an account and how each delivery went."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import store


class DeliveryOut(BaseModel):
    id: int
    channel: str
    recipient: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_response: str | None
    created_at: datetime
    sent_at: datetime | None


class AlertOut(BaseModel):
    id: int
    dedupe_key: str
    account_id: str
    signal_type: str
    severity: str
    summary: str
    signal_event_id: str
    signal: dict[str, Any]
    occurred_at: datetime
    created_at: datetime
    deliveries: list[DeliveryOut]


class AccountAlertsOut(BaseModel):
    account_id: str
    alerts: list[AlertOut]


def build_router(engine: AsyncEngine) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/accounts/{account_id}/alerts", response_model=AccountAlertsOut)
    async def account_alerts(
        account_id: Annotated[str, Path(min_length=1, max_length=200)],
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
    ) -> AccountAlertsOut:
        """The account's alerts, newest first, each with its deliveries."""
        async with engine.connect() as conn:
            rows = await store.account_alerts(conn, account_id, limit)
        return AccountAlertsOut(account_id=account_id,
                                alerts=[AlertOut.model_validate(r) for r in rows])

    return router
