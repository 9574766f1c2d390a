"""Queueing in-place edits of an alert's first Slack message (Web API only): after a reason
joins or clears, or someone acts on the alert. The outbox sends them like any message
(paced, retried), so a change is committed with its edit or not at all."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import store
from services.alerts.outbox import edits_for


async def queue_edits(session: AsyncSession, alert_id: int, *, cause: str, now: datetime) -> int:
    recipients = await store.slack_first_recipients(session, alert_id)
    return await store.insert_deliveries(session, edits_for(alert_id, recipients, cause=cause, now=now))
