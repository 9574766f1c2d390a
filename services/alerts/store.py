"""Alerts' persistence: contacts, alerts and their signal ledger, the delivery outbox, digests,
actions, feedback and preferences. Tables match migrations 0001, 0003_alerts, 0004_alerts and
0005_alerts (one open alert per account, its reasons in `alert_reasons`).

Time columns that drive behaviour (due times, leases, snoozes, escalations) are written and
compared with the injected clock's `now`, never the database's, so tests can move time.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from services.alerts.outbox import AttemptRecord, NewDelivery
from services.alerts.reasons import listing
from services.alerts.routing import StoredPreferences
from shared.account_facts import AccountFacts

TS = DateTime(timezone=True)
Row = dict[str, Any]

metadata = MetaData()
account_contacts = Table(
    "account_contacts",
    metadata,
    Column("account_id", Text, primary_key=True),
    Column("account_name", Text),
    Column("csm_email", Text),
    Column("csm_slack_channel", Text),
    Column("traits", JSONB, nullable=False),
    Column("updated_at", TS, nullable=False, server_default=func.now()),
)
alerts = Table(
    "alerts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),  # the occurrence that opened it
    Column("account_id", Text, nullable=False),
    Column("signal_type", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("segment", Text),
    Column("summary", Text, nullable=False),
    Column("signal_event_id", Text, nullable=False),
    Column("signal", JSONB, nullable=False),  # the newest raised occurrence
    Column("occurred_at", TS, nullable=False),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("state", Text, nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("last_dedupe_key", Text),
    Column("last_signal_at", TS, nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("updated_at", TS),
    Column("acknowledged_at", TS),
    Column("acknowledged_by", Text),
    Column("snoozed_until", TS),
    Column("snooze_reason", Text),
    Column("snoozed_by", Text),
    Column("resolved_at", TS),
    Column("resolved_reason", Text),
    Column("resolved_by", Text),
    Column("clearing_since", TS),
    Column("notified_severity", Text),
    Column("last_notified_at", TS),
    Column("escalate_at", TS),
    Column("escalated_at", TS),
    Column("reopened_count", Integer, nullable=False),
    Index("ix_alerts_account", "account_id", "id"),
    Index("ix_alerts_timers", "state", postgresql_where=text("state <> 'resolved'")),
    Index("ix_alerts_last_resolved", "account_id", "kind", "resolved_at",
          postgresql_where=text("state = 'resolved'")),
    # At most one alert per account and kind (risk or expansion) is not resolved.
    Index("uq_alerts_one_open", "account_id", "kind", unique=True,
          postgresql_where=text("state <> 'resolved'")),
)
# One row per signal type raised in an alert's episode: the reasons the alert lists.
alert_reasons = Table(
    "alert_reasons",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("signal_type", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("severity", Text, nullable=False),  # its worst occurrence while active
    Column("summary", Text, nullable=False),
    Column("signal", JSONB, nullable=False),  # its newest raised occurrence
    Column("state", Text, nullable=False),  # active | cleared
    Column("occurrences", Integer, nullable=False),
    Column("first_signal_at", TS, nullable=False),  # event time
    Column("last_signal_at", TS, nullable=False),  # event time of the newest raise
    Column("clearing_since", TS),
    Column("cleared_at", TS),
    Column("updated_at", TS, nullable=False),
    UniqueConstraint("alert_id", "signal_type", name="uq_alert_reason"),
    CheckConstraint("state IN ('active', 'cleared')", name="ck_alert_reason_state"),
    Index(
        "ix_alert_reasons_clearing",
        "clearing_since",
        postgresql_where=text("state = 'active' AND clearing_since IS NOT NULL"),
    ),
)
alert_signals = Table(
    "alert_signals",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("dedupe_key", Text, nullable=False, unique=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id")),
    Column("account_id", Text, nullable=False),
    Column("signal_type", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("event_id", Text, nullable=False),
    Column("occurred_at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("signal", JSONB, nullable=False),
    Column("outcome", Text, nullable=False),
    Index("ix_alert_signals_alert", "alert_id", "id"),
)
alert_digests = Table(
    "alert_digests",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("recipient", Text, nullable=False),
    Column("digest_date", Date, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("covers_until", TS, nullable=False),
    Column("items", Integer, nullable=False),
    Column("created_at", TS, nullable=False),
    UniqueConstraint("recipient", "digest_date", name="uq_digest_per_day"),
)
alert_digest_items = Table(
    "alert_digest_items",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("recipient", Text, nullable=False),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    Column("signal_id", BigInteger, ForeignKey("alert_signals.id"), nullable=False),
    Column("reason", Text, nullable=False),
    Column("targets", JSONB, nullable=False),
    Column("timezone", Text, nullable=False),
    Column("digest_time", Text, nullable=False),
    Column("added_at", TS, nullable=False),
    Column("digest_id", BigInteger, ForeignKey("alert_digests.id")),
    UniqueConstraint("recipient", "signal_id", name="uq_digest_item"),
    Index("ix_digest_items_pending", "recipient", postgresql_where=text("digest_id IS NULL")),
)
alert_deliveries = Table(
    "alert_deliveries",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id")),
    Column("digest_id", BigInteger, ForeignKey("alert_digests.id")),
    Column("purpose", Text, nullable=False),
    Column("delivery_key", Text, nullable=False),
    Column("channel", Text, nullable=False),
    Column("recipient", Text, nullable=False),
    Column("mention", Text),
    Column("details", JSONB, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", TS, nullable=False),
    Column("pacing_key", Text),
    Column("claimed_at", TS),
    Column("send_started_at", TS),
    Column("in_doubt", Boolean, nullable=False),
    Column("last_status_code", Integer),
    Column("last_response", Text),
    Column("external_id", Text),
    Column("external_channel", Text),
    Column("created_at", TS, nullable=False, server_default=func.now()),
    Column("sent_at", TS),
    Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
    Index("ix_alert_deliveries_alert", "alert_id"),
    UniqueConstraint("delivery_key", name="uq_delivery_key"),
)
alert_delivery_attempts = Table(
    "alert_delivery_attempts",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("delivery_id", BigInteger, ForeignKey("alert_deliveries.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("claimed_at", TS),
    Column("started_at", TS),
    Column("finished_at", TS, nullable=False),
    Column("outcome", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status_code", Integer),
    Column("response", Text),
    Column("in_doubt", Boolean, nullable=False),
    UniqueConstraint("delivery_id", "attempt", name="uq_delivery_attempt"),
)
alert_actions = Table(
    "alert_actions",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), nullable=False),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("via", Text, nullable=False),
    Column("details", JSONB, nullable=False),
    Column("at", TS, nullable=False),
    Index("ix_alert_actions_alert", "alert_id", "id"),
)
alert_feedback = Table(
    "alert_feedback",
    metadata,
    Column("alert_id", BigInteger, ForeignKey("alerts.id"), primary_key=True),
    Column("actor", Text, primary_key=True),
    Column("signal_type", Text, nullable=False),
    Column("useful", Boolean, nullable=False),
    Column("comment", Text),
    Column("at", TS, nullable=False),
)
recipient_preferences = Table(
    "recipient_preferences",
    metadata,
    Column("recipient", Text, primary_key=True),
    Column("preferences", JSONB, nullable=False),
    Column("updated_by", Text),
    Column("updated_at", TS, nullable=False),
)
alert_pacing = Table(
    "alert_pacing",
    metadata,
    Column("pacing_key", Text, primary_key=True),
    Column("next_free_at", TS, nullable=False),
)
alert_link_secret = Table(
    "alert_link_secret",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("secret", Text, nullable=False),
)

ACTIVE = ("pending", "sending")
RESPONSE_MAX = 1000


# --- contacts ------------------------------------------------------------------------------------


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


async def save_contacts(session: AsyncSession, rows: Mapping[str, Mapping[str, Any]]) -> None:
    if not rows:
        return
    values = []
    for account_id, traits in rows.items():
        facts = AccountFacts.from_traits(traits)
        values.append(
            {
                "account_id": account_id,
                "account_name": facts.name,
                "csm_email": facts.csm_email,
                "csm_slack_channel": facts.csm_slack_channel,
                "traits": dict(traits),
            }
        )
    statement = insert(account_contacts).values(values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["account_id"],
            set_={
                "account_name": statement.excluded.account_name,
                "csm_email": statement.excluded.csm_email,
                "csm_slack_channel": statement.excluded.csm_slack_channel,
                "traits": statement.excluded.traits,
                "updated_at": func.now(),
            },
        )
    )


async def load_traits(
    session: AsyncSession | AsyncConnection, account_ids: Iterable[str]
) -> dict[str, dict[str, Any]]:
    wanted = sorted(set(account_ids))
    if not wanted:
        return {}
    rows = await session.execute(
        select(account_contacts.c.account_id, account_contacts.c.traits).where(
            account_contacts.c.account_id.in_(wanted)
        )
    )
    return {r.account_id: dict(r.traits) for r in rows}


# --- the signal ledger and alerts (consumer side) ------------------------------------------------


async def record_signal(session: AsyncSession, values: Row) -> int | None:
    """Insert an occurrence; None if its dedupe key was seen before (the same signal again)."""
    inserted = await session.execute(
        insert(alert_signals)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(alert_signals.c.id)
    )
    signal_id: int | None = inserted.scalar_one_or_none()
    return signal_id


async def set_signal_outcome(
    session: AsyncSession, signal_id: int, alert_id: int | None, outcome: str
) -> None:
    await session.execute(
        update(alert_signals)
        .where(alert_signals.c.id == signal_id)
        .values(alert_id=alert_id, outcome=outcome)
    )


async def lock_open_alert(session: AsyncSession, account_id: str, kind: str) -> Row | None:
    """The account's open (not resolved) alert of this kind (risk or expansion): there is at
    most one, its episode."""
    row = (
        (
            await session.execute(
                select(alerts)
                .where(
                    and_(
                        alerts.c.account_id == account_id,
                        alerts.c.kind == kind,
                        alerts.c.state != "resolved",
                    )
                )
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def lock_last_resolved(session: AsyncSession, account_id: str, kind: str) -> Row | None:
    row = (
        (
            await session.execute(
                select(alerts)
                .where(
                    and_(
                        alerts.c.account_id == account_id,
                        alerts.c.kind == kind,
                        alerts.c.state == "resolved",
                    )
                )
                .order_by(alerts.c.resolved_at.desc().nulls_last(), alerts.c.id.desc())
                .limit(1)
                .with_for_update()
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def load_reasons(session: AsyncSession | AsyncConnection, alert_id: int) -> list[Row]:
    rows = (
        (
            await session.execute(
                select(alert_reasons).where(alert_reasons.c.alert_id == alert_id).order_by(alert_reasons.c.id)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def save_reason(session: AsyncSession, values: Row) -> None:
    """Insert the alert's reason of this signal type, or replace what it holds."""
    statement = insert(alert_reasons).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            constraint="uq_alert_reason",
            set_={k: statement.excluded[k] for k in values if k not in ("alert_id", "signal_type")},
        )
    )


async def update_reason(session: AsyncSession, reason_id: int, **values: Any) -> None:
    await session.execute(update(alert_reasons).where(alert_reasons.c.id == reason_id).values(**values))


async def clear_reasons(
    session: AsyncSession, alert_id: int, now: datetime, signal_type: str | None = None
) -> None:
    """Mark the alert's active reasons (or the one of `signal_type`) cleared."""
    condition = and_(alert_reasons.c.alert_id == alert_id, alert_reasons.c.state == "active")
    if signal_type is not None:
        condition = and_(condition, alert_reasons.c.signal_type == signal_type)
    await session.execute(
        update(alert_reasons)
        .where(condition)
        .values(state="cleared", cleared_at=now, clearing_since=None, updated_at=now)
    )


async def unclaimed_first_notices(session: AsyncSession, alert_id: int) -> set[tuple[str, str]]:
    """(channel, address) of the alert's first notifications not yet claimed by a dispatcher,
    locked so none is claimed before this transaction commits: each will be rendered from the
    alert as it stands then, so news folded in now needs no message of its own to them."""
    rows = await session.execute(
        select(alert_deliveries.c.channel, alert_deliveries.c.recipient)
        .where(
            and_(
                alert_deliveries.c.alert_id == alert_id,
                alert_deliveries.c.purpose == "alert",
                alert_deliveries.c.status == "pending",
                alert_deliveries.c.in_doubt.is_(False),
            )
        )
        .with_for_update(skip_locked=True)
    )
    return {(r.channel, r.recipient) for r in rows}


async def lock_alert(session: AsyncSession, alert_id: int) -> Row | None:
    row = (
        (await session.execute(select(alerts).where(alerts.c.id == alert_id).with_for_update()))
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def insert_alert(session: AsyncSession, values: Row) -> int:
    return int((await session.execute(insert(alerts).values(**values).returning(alerts.c.id))).scalar_one())


async def update_alert(session: AsyncSession, alert_id: int, **values: Any) -> None:
    await session.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


async def insert_deliveries(session: AsyncSession, rows: Sequence[NewDelivery]) -> int:
    if not rows:
        return 0
    inserted = await session.execute(
        insert(alert_deliveries)
        .values(
            [
                {
                    "delivery_key": r.delivery_key,
                    "alert_id": r.alert_id,
                    "digest_id": r.digest_id,
                    "purpose": r.purpose.value,
                    "channel": r.channel,
                    "recipient": r.recipient,
                    "mention": r.mention,
                    "details": r.details,
                    "status": "pending",
                    "attempts": 0,
                    "in_doubt": False,
                    "next_attempt_at": r.next_attempt_at,
                    "created_at": r.created_at,
                }
                for r in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["delivery_key"])
        .returning(alert_deliveries.c.id)
    )
    return len(inserted.all())


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


async def insert_action(
    session: AsyncSession,
    alert_id: int,
    action: str,
    actor: str,
    via: str,
    at: datetime,
    details: Mapping[str, Any] | None = None,
) -> None:
    await session.execute(
        insert(alert_actions).values(
            alert_id=alert_id, action=action, actor=actor, via=via, details=dict(details or {}), at=at
        )
    )


async def cancel_pending(session: AsyncSession, alert_id: int, reason: str) -> int:
    """Deliveries of an alert not yet sent (deferred by quiet hours, say) that no longer need sending."""
    result = await session.execute(
        update(alert_deliveries)
        .where(
            and_(
                alert_deliveries.c.alert_id == alert_id,
                alert_deliveries.c.status == "pending",
                alert_deliveries.c.purpose != "digest",
            )
        )
        .values(status="cancelled", last_response=reason)
        .returning(alert_deliveries.c.id)
    )
    return len(result.all())


# --- preferences -----------------------------------------------------------------------------------


async def load_preferences(session: AsyncSession | AsyncConnection) -> dict[str, StoredPreferences]:
    rows = await session.execute(
        select(recipient_preferences.c.recipient, recipient_preferences.c.preferences)
    )
    return {r.recipient: StoredPreferences.model_validate(r.preferences) for r in rows}


async def get_preferences(conn: AsyncConnection, recipient: str) -> Row | None:
    row = (
        (
            await conn.execute(
                select(recipient_preferences).where(recipient_preferences.c.recipient == recipient)
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


async def put_preferences(
    session: AsyncSession, recipient: str, prefs: StoredPreferences, actor: str | None, now: datetime
) -> None:
    values = {
        "recipient": recipient,
        "preferences": prefs.model_dump(mode="json", exclude_defaults=True),
        "updated_by": actor,
        "updated_at": now,
    }
    statement = insert(recipient_preferences).values(**values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["recipient"], set_={k: statement.excluded[k] for k in values if k != "recipient"}
        )
    )


async def delete_preferences(session: AsyncSession, recipient: str) -> bool:
    result = await session.execute(
        delete(recipient_preferences)
        .where(recipient_preferences.c.recipient == recipient)
        .returning(recipient_preferences.c.recipient)
    )
    return result.first() is not None


# --- feedback --------------------------------------------------------------------------------------


async def upsert_feedback(
    session: AsyncSession,
    alert_id: int,
    actor: str,
    signal_type: str,
    useful: bool,
    comment: str | None,
    now: datetime,
) -> None:
    """One verdict per person per alert: clicking twice, or changing one's mind, counts once."""
    statement = insert(alert_feedback).values(
        alert_id=alert_id, actor=actor, signal_type=signal_type, useful=useful, comment=comment, at=now
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["alert_id", "actor"],
            set_={
                "useful": statement.excluded.useful,
                "comment": statement.excluded.comment,
                "at": statement.excluded.at,
            },
        )
    )


async def feedback_summary(conn: AsyncSession | AsyncConnection) -> list[Row]:
    """Per signal type: verdicts given and how many said "not useful"."""
    rows = await conn.execute(
        select(
            alert_feedback.c.signal_type,
            func.count().label("verdicts"),
            func.sum(case((alert_feedback.c.useful.is_(False), 1), else_=0)).label("not_useful"),
        )
        .group_by(alert_feedback.c.signal_type)
        .order_by(alert_feedback.c.signal_type)
    )
    return [
        {"signal_type": r.signal_type, "verdicts": int(r.verdicts), "not_useful": int(r.not_useful)}
        for r in rows
    ]


# --- the outbox (dispatcher side) ------------------------------------------------------------------


async def due_deliveries(session: AsyncSession, *, now: datetime, limit: int, max_attempts: int) -> list[Row]:
    """Due rows, locked for this transaction (other dispatchers skip them): pending ones whose
    time has come, and 'sending' ones whose lease ran out (their process stopped mid-send)."""
    rows = (
        (
            await session.execute(
                select(alert_deliveries)
                .where(
                    and_(
                        alert_deliveries.c.status.in_(ACTIVE),
                        alert_deliveries.c.next_attempt_at <= now,
                        alert_deliveries.c.attempts < max_attempts,
                    )
                )
                .order_by(alert_deliveries.c.next_attempt_at, alert_deliveries.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


async def lock_pacing(session: AsyncSession, keys: Iterable[str], now: datetime) -> dict[str, datetime]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    await session.execute(
        insert(alert_pacing)
        .values([{"pacing_key": k, "next_free_at": now} for k in wanted])
        .on_conflict_do_nothing(index_elements=["pacing_key"])
    )
    rows = await session.execute(
        select(alert_pacing)
        .where(alert_pacing.c.pacing_key.in_(wanted))
        .order_by(alert_pacing.c.pacing_key)
        .with_for_update()
    )
    return {r.pacing_key: r.next_free_at for r in rows}


async def save_pacing(session: AsyncSession, next_free: Mapping[str, datetime]) -> None:
    for key, at in next_free.items():
        await session.execute(
            update(alert_pacing).where(alert_pacing.c.pacing_key == key).values(next_free_at=at)
        )


async def push_pacing(session: AsyncSession, key: str, not_before: datetime) -> None:
    """A 429 for this webhook or channel: nobody sends to it before `not_before`."""
    statement = insert(alert_pacing).values(pacing_key=key, next_free_at=not_before)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["pacing_key"],
            set_={
                "next_free_at": func.greatest(alert_pacing.c.next_free_at, statement.excluded.next_free_at)
            },
        )
    )


async def mark_claimed(
    session: AsyncSession,
    delivery_id: int,
    *,
    attempts: int,
    now: datetime,
    lease_until: datetime,
    in_doubt: bool,
    pacing_key: str | None,
) -> None:
    await session.execute(
        update(alert_deliveries)
        .where(alert_deliveries.c.id == delivery_id)
        .values(
            status="sending",
            attempts=attempts,
            claimed_at=now,
            send_started_at=None,
            next_attempt_at=lease_until,
            in_doubt=in_doubt,
            pacing_key=pacing_key,
        )
    )


def _fenced(delivery_id: int, attempts: int) -> Any:
    return and_(
        alert_deliveries.c.id == delivery_id,
        alert_deliveries.c.status == "sending",
        alert_deliveries.c.attempts == attempts,
    )


async def mark_started(session: AsyncSession, delivery_id: int, attempts: int, now: datetime) -> bool:
    """The ledger's "about to send": after this commit, a crash leaves the attempt in doubt."""
    result = await session.execute(
        update(alert_deliveries)
        .where(_fenced(delivery_id, attempts))
        .values(send_started_at=now)
        .returning(alert_deliveries.c.id)
    )
    return result.first() is not None


async def complete_delivery(
    session: AsyncSession,
    delivery_id: int,
    claimed_attempts: int,
    attempt: AttemptRecord | None = None,
    **values: Any,
) -> bool:
    """Record an attempt's result on the delivery and, with `attempt`, in the attempt log, in the
    caller's transaction; False (and nothing written) when this process no longer holds the
    delivery (its lease expired and another claim took it), so a late result never overwrites a
    newer one."""
    result = await session.execute(
        update(alert_deliveries)
        .where(_fenced(delivery_id, claimed_attempts))
        .values(**values)
        .returning(alert_deliveries.c.id)
    )
    if result.first() is None:
        return False
    if attempt is not None:
        await insert_attempts(session, [attempt])
    return True


async def insert_attempts(session: AsyncSession, rows: Sequence[AttemptRecord]) -> None:
    if not rows:
        return
    await session.execute(
        insert(alert_delivery_attempts).values(
            [
                {
                    "delivery_id": r.delivery_id,
                    "attempt": r.attempt,
                    "claimed_at": r.claimed_at,
                    "started_at": r.started_at,
                    "finished_at": r.finished_at,
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "status_code": r.status_code,
                    "response": (r.response or "")[:RESPONSE_MAX] or None,
                    "in_doubt": r.in_doubt,
                }
                for r in rows
            ]
        )
    )


def interrupted(row: Mapping[str, Any], now: datetime) -> AttemptRecord:
    """The attempt a stopped process (or one that lost its lease) never recorded, as found later."""
    started = row["send_started_at"]
    return AttemptRecord(
        delivery_id=int(row["id"]),
        attempt=int(row["attempts"]),
        claimed_at=row["claimed_at"],
        started_at=started,
        finished_at=now,
        outcome="interrupted",
        reason="lease_expired",
        response=(
            "no result recorded: the attempt stopped after it started sending, so the receiver "
            "may have the message"
            if started is not None
            else "no result recorded: the attempt stopped before sending anything"
        ),
        in_doubt=started is not None,
    )


async def fail_exhausted(session: AsyncSession, *, now: datetime, max_attempts: int) -> list[str]:
    """Give up on due deliveries that used every attempt (the last one's process died)."""
    exhausted = (
        select(alert_deliveries.c.id)
        .where(
            and_(
                alert_deliveries.c.status.in_(ACTIVE),
                alert_deliveries.c.next_attempt_at <= now,
                alert_deliveries.c.attempts >= max_attempts,
            )
        )
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    rows = (
        (
            await session.execute(
                update(alert_deliveries)
                .where(alert_deliveries.c.id.in_(exhausted))
                .values(
                    status="failed",
                    last_response="gave up: every attempt used; the last one's outcome is "
                    "unknown (its process stopped before recording it)",
                )
                .returning(
                    alert_deliveries.c.id,
                    alert_deliveries.c.channel,
                    alert_deliveries.c.attempts,
                    alert_deliveries.c.claimed_at,
                    alert_deliveries.c.send_started_at,
                )
            )
        )
        .mappings()
        .all()
    )
    await insert_attempts(session, [interrupted(dict(r), now) for r in rows if r["attempts"] > 0])
    return [str(r["channel"]) for r in rows]


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


async def find_account(conn: AsyncConnection, text: str) -> Row | None:
    """An account by its id, else by its name (case-insensitive), as alerts knows it."""
    for condition in (
        account_contacts.c.account_id == text,
        func.lower(account_contacts.c.account_name) == text.lower(),
    ):
        row = (
            (
                await conn.execute(
                    select(account_contacts.c.account_id, account_contacts.c.account_name)
                    .where(condition)
                    .order_by(account_contacts.c.account_id)
                    .limit(1)
                )
            )
            .mappings()
            .first()
        )
        if row:
            return dict(row)
    return None


async def latest_action(session: AsyncSession, alert_id: int) -> Row | None:
    """The last thing a person did to the alert (for 'who did what and when' on the message)."""
    row = (
        (
            await session.execute(
                select(alert_actions.c.action, alert_actions.c.actor, alert_actions.c.via,
                       alert_actions.c.details, alert_actions.c.at)
                .where(alert_actions.c.alert_id == alert_id)
                .order_by(alert_actions.c.id.desc())
                .limit(1)
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


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


async def load_alert_rows(session: AsyncSession, alert_ids: Iterable[int]) -> dict[int, Row]:
    wanted = sorted(set(alert_ids))
    if not wanted:
        return {}
    rows = (await session.execute(select(alerts).where(alerts.c.id.in_(wanted)))).mappings().all()
    return {r["id"]: dict(r) for r in rows}


async def load_signal_rows(
    session: AsyncSession | AsyncConnection, signal_ids: Iterable[int]
) -> dict[int, Row]:
    wanted = sorted(set(signal_ids))
    if not wanted:
        return {}
    rows = (
        (await session.execute(select(alert_signals).where(alert_signals.c.id.in_(wanted)))).mappings().all()
    )
    return {r["id"]: dict(r) for r in rows}


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


async def queue_depth(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(alert_deliveries.c.channel, func.count())
        .where(alert_deliveries.c.status.in_(ACTIVE))
        .group_by(alert_deliveries.c.channel)
    )
    return {channel: count for channel, count in rows.all()}


# --- time-based work (scheduler side) --------------------------------------------------------------


async def lock_due_alerts(session: AsyncSession, condition: Any, limit: int = 100) -> list[Row]:
    rows = (
        (
            await session.execute(
                select(alerts)
                .where(and_(alerts.c.state != "resolved", condition))
                .order_by(alerts.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


def snooze_over(now: datetime) -> Any:
    return and_(alerts.c.state == "snoozed", alerts.c.snoozed_until <= now)


def clear_over(deadline: datetime) -> Any:
    """Alerts whose clear timer ran out, or that have an active reason whose timer did."""
    return or_(
        and_(alerts.c.clearing_since.is_not(None), alerts.c.clearing_since <= deadline),
        _reason_clear_over(deadline),
    )


def _reason_clear_over(deadline: datetime) -> Any:
    return alerts.c.id.in_(
        select(alert_reasons.c.alert_id).where(
            and_(
                alert_reasons.c.state == "active",
                alert_reasons.c.clearing_since.is_not(None),
                alert_reasons.c.clearing_since <= deadline,
            )
        )
    )


def escalation_over(now: datetime) -> Any:
    return and_(alerts.c.state == "open", alerts.c.escalated_at.is_(None), alerts.c.escalate_at <= now)


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


# --- the API's read model ----------------------------------------------------------------------------


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


# --- the link secret -----------------------------------------------------------------------------------


async def link_secret(session: AsyncSession) -> str:
    """The secret signing action links when none is configured: made once, shared by every instance."""
    await session.execute(
        insert(alert_link_secret)
        .values(id=1, secret=secrets.token_urlsafe(48))
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return str(
        (
            await session.execute(select(alert_link_secret.c.secret).where(alert_link_secret.c.id == 1))
        ).scalar_one()
    )
