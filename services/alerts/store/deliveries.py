"""The delivery outbox: rows to send, their leases and fenced attempts (on shared/runtime/work_queue).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.delivery.outbox import AttemptRecord, NewDelivery
from services.alerts.store.tables import Row, alert_deliveries, alert_delivery_attempts
from shared.runtime.work_queue import ACTIVE, WorkQueue

WORK_QUEUE = WorkQueue(alert_deliveries)
RESPONSE_MAX = 1000


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


async def due_deliveries(session: AsyncSession, *, now: datetime, limit: int, max_attempts: int) -> list[Row]:
    """Due rows, locked for this transaction (other dispatchers skip them): pending ones whose
    time has come, and 'sending' ones whose lease ran out (their process stopped mid-send)."""
    due = WORK_QUEUE.lock_due(now=now, limit=limit, max_attempts=max_attempts)
    rows = (await session.execute(due)).mappings().all()
    return [dict(r) for r in rows]


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
            **WORK_QUEUE.claimed(attempts, lease_until),
            claimed_at=now,
            send_started_at=None,
            in_doubt=in_doubt,
            pacing_key=pacing_key,
        )
    )


async def mark_started(session: AsyncSession, delivery_id: int, attempts: int, now: datetime) -> bool:
    """The ledger's "about to send": after this commit, a crash leaves the attempt in doubt."""
    result = await session.execute(
        update(alert_deliveries)
        .where(WORK_QUEUE.held(delivery_id, attempts))
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
        .where(WORK_QUEUE.held(delivery_id, claimed_attempts))
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
        .where(WORK_QUEUE.exhausted(now, max_attempts))
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


async def queue_depth(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(
        select(alert_deliveries.c.channel, func.count())
        .where(alert_deliveries.c.status.in_(ACTIVE))
        .group_by(alert_deliveries.c.channel)
    )
    return {channel: count for channel, count in rows.all()}
