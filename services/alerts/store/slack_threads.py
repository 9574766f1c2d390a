"""Slack threads and edits: which message an alert's later news replies to or edits.
"""

from __future__ import annotations

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.store.tables import Row, alert_deliveries


async def thread_parent(session: AsyncSession, alert_id: int, channel: str, recipient: str) -> Row | None:
    """The sent first notification of an alert to the same Slack address (to reply in its thread)."""
    row = (
        (
            await session.execute(
                select(alert_deliveries.c.external_id, alert_deliveries.c.external_channel)
                .where(
                    and_(
                        alert_deliveries.c.alert_id == alert_id,
                        alert_deliveries.c.channel == channel,
                        alert_deliveries.c.recipient == recipient,
                        alert_deliveries.c.purpose == "alert",
                        alert_deliveries.c.status == "sent",
                        alert_deliveries.c.external_id.is_not(None),
                    )
                )
                .limit(1)
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def slack_first_recipients(
    session: AsyncSession, alert_id: int, *, posted_only: bool = False
) -> dict[str, str | None]:
    """The Slack addresses the alert's first message went (or is going) to, with its @-mention:
    what an edit updates (keeping the mention, which an edit does not notify again).
    `posted_only`: those posted through the Web API (a webhook post has no ts to edit)."""
    wanted = [
        alert_deliveries.c.alert_id == alert_id,
        alert_deliveries.c.channel == "slack",
        alert_deliveries.c.purpose == "alert",
    ]
    if posted_only:
        wanted += [alert_deliveries.c.status == "sent", alert_deliveries.c.external_id.is_not(None)]
    else:
        wanted.append(alert_deliveries.c.status.in_(("pending", "sending", "sent")))
    rows = await session.execute(
        select(alert_deliveries.c.recipient, alert_deliveries.c.mention).where(and_(*wanted))
    )
    return {str(r.recipient): r.mention for r in rows}


async def supersede_edits(session: AsyncSession, alert_id: int) -> int:
    """Edits of the alert's message not tried yet: a newer edit shows all they would have."""
    result = await session.execute(
        update(alert_deliveries)
        .where(
            and_(
                alert_deliveries.c.alert_id == alert_id,
                alert_deliveries.c.purpose == "edit",
                alert_deliveries.c.status == "pending",
                alert_deliveries.c.attempts == 0,
            )
        )
        .values(status="cancelled", last_response="not sent: superseded by a later edit")
        .returning(alert_deliveries.c.id)
    )
    return len(result.all())


async def first_slack_status(session: AsyncSession, alert_id: int, recipient: str) -> str | None:
    """Where the alert's first Slack message to this address stands (pending, sending, sent...)."""
    return (
        await session.execute(
            select(alert_deliveries.c.status)
            .where(
                and_(
                    alert_deliveries.c.alert_id == alert_id,
                    alert_deliveries.c.channel == "slack",
                    alert_deliveries.c.recipient == recipient,
                    alert_deliveries.c.purpose == "alert",
                )
            )
            .order_by(alert_deliveries.c.id)
            .limit(1)
        )
    ).scalar_one_or_none()


async def known_channel_id(session: AsyncSession, recipient: str) -> str | None:
    """The Slack channel id a name resolved to on an earlier successful post."""
    return (
        await session.execute(
            select(alert_deliveries.c.external_channel)
            .where(
                and_(
                    alert_deliveries.c.recipient == recipient,
                    alert_deliveries.c.channel == "slack",
                    alert_deliveries.c.external_channel.is_not(None),
                )
            )
            .order_by(alert_deliveries.c.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def first_message_id(session: AsyncSession, alert_id: int, recipient: str) -> str | None:
    """The Message-ID of the first email about an alert to this address (to thread follow-ups)."""
    return (
        await session.execute(
            select(alert_deliveries.c.external_id)
            .where(
                and_(
                    alert_deliveries.c.alert_id == alert_id,
                    alert_deliveries.c.channel == "email",
                    alert_deliveries.c.recipient == recipient,
                    alert_deliveries.c.purpose == "alert",
                    alert_deliveries.c.external_id.is_not(None),
                )
            )
            .limit(1)
        )
    ).scalar_one_or_none()
