"""Queueing in-place edits of an alert's first Slack message (Web API only): after a reason
joins or clears, or someone acts on the alert. The outbox sends them like any message
(paced, retried), so a change is committed with its edit or not at all."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.delivery.outbox import edits_for
from services.alerts.store import deliveries as delivery_store
from services.alerts.store import slack_threads


async def queue_edits(
    session: AsyncSession, alert_id: int, *, cause: str, now: datetime, posted_only: bool = False
) -> int:
    """`posted_only`: edit only messages already posted through the Web API (for changes made
    by a person or the clock, which any deployment makes; a first message still to be sent
    will show them anyway)."""
    recipients = await slack_threads.slack_first_recipients(session, alert_id, posted_only=posted_only)
    if not recipients:
        return 0
    # Each edit renders the alert as it is when sent: a burst of changes (the bad week's four
    # signals) needs only the last one, which keeps chat.update well inside Slack's rate limits.
    await slack_threads.supersede_edits(session, alert_id)
    edits = edits_for(alert_id, recipients, cause=cause, now=now)
    return await delivery_store.insert_deliveries(session, edits)
