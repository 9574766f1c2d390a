"""Turning a routing plan into outbox rows. Pure.

Each row carries a `delivery_key` that names what it is for ("the first notification of
alert 7 to #cs-acme"), unique in the table: writing the same plan twice (a retried batch, a
second scheduler) cannot queue the same message twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.alerts.routing.plan import Notice


class Purpose(StrEnum):
    ALERT = "alert"  # the first notification of an alert
    UPDATE = "update"  # a follow-up: the alert got more severe (threaded where Slack allows)
    REMINDER = "reminder"  # its snooze ended and it still holds
    ESCALATION = "escalation"  # unacknowledged past the escalation delay: to the escalation contacts
    DIGEST = "digest"  # one recipient's daily summary
    # The first Slack message edited in place (chat.update): a reason joined or cleared, or
    # someone acted on the alert. Web API only; rendered from the alert as it is when sent.
    EDIT = "edit"


@dataclass(frozen=True)
class NewDelivery:
    delivery_key: str
    purpose: Purpose
    channel: str
    recipient: str
    next_attempt_at: datetime
    created_at: datetime
    alert_id: int | None = None
    digest_id: int | None = None
    mention: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt in a delivery's log: what the claim numbered `attempt` ended in.

    `outcome`: sent, retry, failed, cancelled (no longer needed, nothing sent) or interrupted
    (its process stopped or lost the lease before recording a result; found by a later claim).
    `status_code` is the HTTP status or the SMTP reply code.
    """

    delivery_id: int
    attempt: int
    claimed_at: datetime | None
    started_at: datetime | None
    finished_at: datetime
    outcome: str
    reason: str
    status_code: int | None = None
    response: str | None = None
    in_doubt: bool = False


def deliveries_for(
    notices: Iterable[Notice],
    *,
    alert_id: int,
    purpose: Purpose,
    tag: str,
    now: datetime,
    details: dict[str, Any] | None = None,
    hold_until: datetime | None = None,
) -> list[NewDelivery]:
    """Rows for every immediate target of `notices`; `tag` tells apart repeats of a purpose
    (the occurrence that raised severity, the snooze that ended). None is due before
    `hold_until` (the first message's group wait) nor before its recipient's quiet hours end."""
    rows: list[NewDelivery] = []
    for notice in notices:
        if not notice.immediate:
            continue
        due = max(notice.not_before or now, hold_until or now)
        for target in notice.targets:
            rows.append(
                NewDelivery(
                    delivery_key=f"alert:{alert_id}:{purpose.value}:{tag}:{target.channel.value}:{target.address}",
                    purpose=purpose,
                    channel=target.channel.value,
                    recipient=target.address,
                    next_attempt_at=due,
                    created_at=now,
                    alert_id=alert_id,
                    mention=target.mention,
                    details={
                        **(details or {}),
                        "recipient_key": notice.recipient,
                        "role": notice.role.value,
                        "due_at": due.isoformat(),
                    },
                )
            )
    return rows


def edits_for(
    alert_id: int, recipients: Mapping[str, str | None], *, cause: str, now: datetime
) -> list[NewDelivery]:
    """One in-place edit of the alert's first Slack message per address it went to. Edits are
    idempotent (each shows the alert as it is when sent), so `cause` and the time only keep
    the keys of separate changes apart."""
    tag = f"{now.timestamp():.6f}:{cause}"
    return [
        NewDelivery(
            delivery_key=f"alert:{alert_id}:{Purpose.EDIT.value}:{tag}:slack:{recipient}",
            purpose=Purpose.EDIT,
            channel="slack",
            recipient=recipient,
            next_attempt_at=now,
            created_at=now,
            alert_id=alert_id,
            mention=recipients[recipient],
            details={"cause": cause, "due_at": now.isoformat()},
        )
        for recipient in sorted(recipients)
    ]
