"""Alerts' persistence: contacts, alerts and their deliveries (the outbox), and their queries.

Tables match shared/migrations/versions/0001_foundation.py. The dispatcher's queries use
the database clock (`now()`) throughout, so several dispatcher processes agree on what is due.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    Interval,
    MetaData,
    Table,
    Text,
    and_,
    func,
    literal,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.alerts.contacts import Contact
from services.alerts.routing import Target

TS = DateTime(timezone=True)

metadata = MetaData()
account_contacts = Table(
    "account_contacts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("account_name", Text),
    Column("csm_email", Text),
    Column("csm_slack_channel", Text),
    Column("traits", JSONB, nullable=False),
    Column("updated_at", TS, server_default=func.now()),
)
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("account_id", Text, nullable=False),
    Column("signal_type", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("signal_event_id", Text, nullable=False),
    Column("signal", JSONB, nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("created_at", TS, server_default=func.now()),
)
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    Column("channel", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TS, nullable=False),
    Column("last_status_code", Integer),
    Column("last_response", Text),
    Column("created_at", TS, server_default=func.now()),
    Column("sent_at", TS),
)


# --- contacts (consumer side) ---------------------------------------------------------------


async def lock_contact_traits(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(account_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(account_contacts.c.account_id, account_contacts.c.traits)
        .where(account_contacts.c.account_id.in_(wanted))
        .with_for_update()
    )
    return {r.account_id: dict(r.traits) for r in rows}


async def save_contacts(
    session: AsyncSession, rows: Sequence[tuple[Contact, Mapping[str, Any]]]
) -> None:
    if not rows:
        return
    statement = insert(account_contacts).values([
        {"account_id": c.account_id, "account_name": c.account_name, "csm_email": c.csm_email,
         "csm_slack_channel": c.csm_slack_channel, "traits": dict(traits)}
        for c, traits in rows
    ])
    await session.execute(statement.on_conflict_do_update(
        index_elements=["account_id"],
        set_={"account_name": statement.excluded.account_name,
              "csm_email": statement.excluded.csm_email,
              "csm_slack_channel": statement.excluded.csm_slack_channel,
              "traits": statement.excluded.traits,
              "updated_at": func.now()},
    ))


async def load_contacts(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, Contact]:
    wanted = sorted(set(account_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(account_contacts.c.account_id, account_contacts.c.account_name,
               account_contacts.c.csm_email, account_contacts.c.csm_slack_channel)
        .where(account_contacts.c.account_id.in_(wanted))
    )
    return {r.account_id: Contact(r.account_id, r.account_name, r.csm_email, r.csm_slack_channel)
            for r in rows}


# --- alerts and their deliveries (consumer side) --------------------------------------------


@dataclass(frozen=True)
class NewAlert:
    dedupe_key: str
    account_id: str
    signal_type: str
    severity: str
    summary: str
    signal_event_id: str
    signal: dict[str, Any]
    occurred_at: datetime


async def insert_new_alerts(session: AsyncSession, candidates: Sequence[NewAlert]) -> dict[str, int]:
    """Insert the alerts whose dedupe key is new; returns {dedupe_key: alert id} of those only."""
    if not candidates:
        return {}
    inserted = await session.execute(
        insert(alerts)
        .values([
            {"dedupe_key": a.dedupe_key, "account_id": a.account_id, "signal_type": a.signal_type,
             "severity": a.severity, "summary": a.summary, "signal_event_id": a.signal_event_id,
             "signal": a.signal, "occurred_at": a.occurred_at}
            for a in candidates
        ])
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(alerts.c.dedupe_key, alerts.c.id)
    )
    return {r.dedupe_key: r.id for r in inserted}


async def insert_deliveries(session: AsyncSession, targets: Sequence[tuple[int, Target]]) -> int:
    if not targets:
        return 0
    inserted = await session.execute(
        insert(alert_deliveries)
        .values([{"alert_id": alert_id, "channel": t.channel.value, "recipient": t.recipient,
                  "status": "pending", "attempts": 0}
                 for alert_id, t in targets])
        .on_conflict_do_nothing(constraint="uq_delivery_target")
        .returning(alert_deliveries.c.id)
    )
    return len(inserted.all())


# --- the dispatcher's outbox queries --------------------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    alert_id: int
    channel: str
    recipient: str
    attempts: int  # including this one; also the fencing token for completing it


async def claim_due(
    session: AsyncSession, *, limit: int, lease_seconds: float, max_attempts: int
) -> list[ClaimedDelivery]:
    """Take up to `limit` due deliveries for this process: pending ones whose time has come,
    and 'sending' ones whose lease ran out (their process died mid-send).

    The claim moves `next_attempt_at` to the lease's end, so the same index serves both
    cases and a claimed row is invisible to other dispatchers until the lease expires.
    """
    due = (
        select(alert_deliveries.c.id)
        .where(and_(alert_deliveries.c.status.in_(["pending", "sending"]),
                    alert_deliveries.c.next_attempt_at <= func.now(),
                    alert_deliveries.c.attempts < max_attempts))
        .order_by(alert_deliveries.c.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(alert_deliveries)
        .where(alert_deliveries.c.id.in_(due))
        .values(status="sending", attempts=alert_deliveries.c.attempts + 1,
                next_attempt_at=func.now() + _seconds(lease_seconds))
        .returning(alert_deliveries.c.id, alert_deliveries.c.alert_id, alert_deliveries.c.channel,
                   alert_deliveries.c.recipient, alert_deliveries.c.attempts)
    )
    claimed = [ClaimedDelivery(r.id, r.alert_id, r.channel, r.recipient, r.attempts) for r in rows]
    return sorted(claimed, key=lambda d: d.id)


async def fail_exhausted(session: AsyncSession, *, max_attempts: int) -> list[str]:
    """Give up on due deliveries that have used every attempt; returns their channels.

    Reached when a process died during the last attempt (its outcome is unknown), or when
    `delivery_max_attempts` was lowered while retries were scheduled.
    """
    exhausted = (
        select(alert_deliveries.c.id)
        .where(and_(alert_deliveries.c.status.in_(["pending", "sending"]),
                    alert_deliveries.c.next_attempt_at <= func.now(),
                    alert_deliveries.c.attempts >= max_attempts))
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(alert_deliveries)
        .where(alert_deliveries.c.id.in_(exhausted))
        .values(status="failed",
                last_response="gave up: every attempt used; the last one's outcome is unknown "
                              "(its process stopped before recording it)")
        .returning(alert_deliveries.c.channel)
    )
    return list(rows.scalars())


@dataclass(frozen=True)
class AlertRecord:
    id: int
    account_id: str
    signal: dict[str, Any]
    occurred_at: datetime
    created_at: datetime
    account_name: str | None
    csm_slack_channel: str | None


async def load_alerts(session: AsyncSession, alert_ids: Iterable[int]) -> dict[int, AlertRecord]:
    wanted = sorted(set(alert_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(alerts.c.id, alerts.c.account_id, alerts.c.signal, alerts.c.occurred_at,
               alerts.c.created_at, account_contacts.c.account_name,
               account_contacts.c.csm_slack_channel)
        .select_from(alerts.outerjoin(account_contacts,
                                      account_contacts.c.account_id == alerts.c.account_id))
        .where(alerts.c.id.in_(wanted))
    )
    return {r.id: AlertRecord(r.id, r.account_id, r.signal, r.occurred_at, r.created_at,
                              r.account_name, r.csm_slack_channel) for r in rows}


async def complete_delivery(
    session: AsyncSession,
    delivery: ClaimedDelivery,
    *,
    status: str,
    status_code: int | None,
    response: str,
    delay_seconds: float | None = None,
) -> datetime | None:
    """Record an attempt's result; returns the row's new `sent_at`/`next_attempt_at`, or None
    when this process no longer holds the delivery (its lease expired and another claim won).
    """
    values: dict[str, Any] = {"status": status, "last_status_code": status_code,
                              "last_response": response}
    if status == "sent":
        values["sent_at"] = func.now()
        returned = alert_deliveries.c.sent_at
    elif status == "pending":
        values["next_attempt_at"] = func.now() + _seconds(delay_seconds or 0.0)
        returned = alert_deliveries.c.next_attempt_at
    else:
        returned = alert_deliveries.c.next_attempt_at
    result = await session.execute(
        update(alert_deliveries)
        .where(and_(alert_deliveries.c.id == delivery.id,
                    alert_deliveries.c.status == "sending",
                    alert_deliveries.c.attempts == delivery.attempts))
        .values(**values)
        .returning(returned)
    )
    value: datetime | None = result.scalar_one_or_none()
    return value


async def queue_depth(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(alert_deliveries.c.channel, func.count())
        .where(alert_deliveries.c.status.in_(["pending", "sending"]))
        .group_by(alert_deliveries.c.channel)
    )
    return {channel: count for channel, count in rows.all()}


# --- the API's read model -------------------------------------------------------------------


async def account_alerts(conn: AsyncConnection, account_id: str, limit: int) -> list[dict[str, Any]]:
    """The account's newest alerts, each with its deliveries."""
    alert_rows = (await conn.execute(
        select(alerts)
        .where(alerts.c.account_id == account_id)
        .order_by(alerts.c.id.desc())
        .limit(limit)
    )).mappings().all()
    ids = [r["id"] for r in alert_rows]
    deliveries: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        delivery_rows = (await conn.execute(
            select(alert_deliveries)
            .where(alert_deliveries.c.alert_id.in_(ids))
            .order_by(alert_deliveries.c.id)
        )).mappings().all()
        for d in delivery_rows:
            deliveries[d["alert_id"]].append(dict(d))
    return [{**dict(r), "deliveries": deliveries[r["id"]]} for r in alert_rows]


def _seconds(seconds: float) -> Any:
    return literal(timedelta(seconds=seconds), Interval())
