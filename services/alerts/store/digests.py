"""Digests: the items gathered for a recipient and the digest deliveries made of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.store.tables import (
    Row,
    account_contacts,
    alert_digest_items,
    alert_digests,
    alert_signals,
    alerts,
)


async def insert_digest_items(session: AsyncSession, rows: Sequence[Row]) -> int:
    if not rows:
        return 0
    inserted = await session.execute(
        insert(alert_digest_items)
        .values(list(rows))
        .on_conflict_do_nothing(constraint="uq_digest_item")
        .returning(alert_digest_items.c.id)
    )
    return len(inserted.all())


async def digest_contents(session: AsyncSession, digest_id: int) -> list[Row]:
    rows = (
        (
            await session.execute(
                select(
                    alert_digest_items.c.reason,
                    alert_digest_items.c.added_at,
                    alert_signals.c.signal,
                    alert_signals.c.severity,
                    alert_signals.c.occurred_at,
                    alerts.c.id.label("alert_id"),
                    alerts.c.account_id,
                    alerts.c.state,
                    account_contacts.c.traits,
                )
                .select_from(
                    alert_digest_items.join(
                        alert_signals, alert_signals.c.id == alert_digest_items.c.signal_id
                    )
                    .join(alerts, alerts.c.id == alert_digest_items.c.alert_id)
                    .outerjoin(account_contacts, account_contacts.c.account_id == alerts.c.account_id)
                )
                .where(alert_digest_items.c.digest_id == digest_id)
                .order_by(alert_digest_items.c.id)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def pending_digest_recipients(session: AsyncSession) -> list[Row]:
    """Each recipient with undigested items, with the zone, digest time, targets and alert
    segment of their newest item."""
    newest = (
        select(alert_digest_items.c.recipient, func.max(alert_digest_items.c.id).label("id"))
        .where(alert_digest_items.c.digest_id.is_(None))
        .group_by(alert_digest_items.c.recipient)
        .subquery()
    )
    rows = (
        (
            await session.execute(
                select(
                    alert_digest_items.c.recipient,
                    alert_digest_items.c.timezone,
                    alert_digest_items.c.digest_time,
                    alert_digest_items.c.targets,
                    alerts.c.segment,
                )
                .join(newest, newest.c.id == alert_digest_items.c.id)
                .join(alerts, alerts.c.id == alert_digest_items.c.alert_id)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def count_pending_items(session: AsyncSession, recipient: str, covers_until: datetime) -> int:
    return int(
        (
            await session.execute(
                select(func.count()).where(
                    and_(
                        alert_digest_items.c.recipient == recipient,
                        alert_digest_items.c.digest_id.is_(None),
                        alert_digest_items.c.added_at < covers_until,
                    )
                )
            )
        ).scalar_one()
    )


async def create_digest(
    session: AsyncSession,
    *,
    recipient: str,
    digest_date: date,
    timezone: str,
    covers_until: datetime,
    now: datetime,
) -> tuple[int, int] | None:
    """Gather the recipient's items from before `covers_until` into the digest of `digest_date`;
    None if that digest exists already or there is nothing to put in it."""
    items = (
        select(alert_digest_items.c.id)
        .where(
            and_(
                alert_digest_items.c.recipient == recipient,
                alert_digest_items.c.digest_id.is_(None),
                alert_digest_items.c.added_at < covers_until,
            )
        )
        .with_for_update(skip_locked=True)
    )
    ids = list((await session.execute(items)).scalars())
    if not ids:
        return None
    digest_id = (
        await session.execute(
            insert(alert_digests)
            .values(
                recipient=recipient,
                digest_date=digest_date,
                timezone=timezone,
                covers_until=covers_until,
                items=len(ids),
                created_at=now,
            )
            .on_conflict_do_nothing(constraint="uq_digest_per_day")
            .returning(alert_digests.c.id)
        )
    ).scalar_one_or_none()
    if digest_id is None:
        return None
    await session.execute(
        update(alert_digest_items).where(alert_digest_items.c.id.in_(ids)).values(digest_id=digest_id)
    )
    return int(digest_id), len(ids)
