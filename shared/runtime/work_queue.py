"""A table as a work queue of leased, fenced attempts (alerts' delivery outbox, surveys' invitations).

The table has `id`, `status`, `attempts` and `next_attempt_at`. A row waits 'pending' until
`next_attempt_at`; a claim, under `FOR UPDATE SKIP LOCKED` so two workers never take one row,
makes it 'sending', counts the attempt and moves `next_attempt_at` to the end of the lease. A
worker that stops mid-attempt leaves the row 'sending' until the lease runs out, when it is due
again (at least once, never lost). A result is written only while the row is still 'sending' at
the attempt number claimed: an attempt that outlived its lease cannot overwrite a newer one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, Table, and_, select

PENDING = "pending"
SENDING = "sending"
ACTIVE = (PENDING, SENDING)


@dataclass(frozen=True)
class WorkQueue:
    table: Table

    def due(self, now: datetime, max_attempts: int) -> ColumnElement[bool]:
        """Pending rows whose time has come, and claimed ones whose lease ran out, with attempts left."""
        c = self.table.c
        return and_(c.status.in_(ACTIVE), c.next_attempt_at <= now, c.attempts < max_attempts)

    def exhausted(
        self, now: datetime, max_attempts: int, statuses: Sequence[str] = ACTIVE
    ) -> ColumnElement[bool]:
        """Due rows with every attempt used: the last one's worker stopped before recording it."""
        c = self.table.c
        return and_(c.status.in_(statuses), c.next_attempt_at <= now, c.attempts >= max_attempts)

    def lock_due(self, *columns: Any, now: datetime, limit: int, max_attempts: int) -> Select[Any]:
        """The oldest due rows (all columns, or those named), locked; rows others hold are skipped."""
        c = self.table.c
        return (
            select(*(columns or (self.table,)))
            .where(self.due(now, max_attempts))
            .order_by(c.next_attempt_at, c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )

    def claimed(self, attempts: Any, lease_until: datetime) -> dict[str, Any]:
        """The values that make a row claimed: attempt number `attempts`, held until `lease_until`."""
        return {"status": SENDING, "attempts": attempts, "next_attempt_at": lease_until}

    def held(self, row_id: Any, attempts: int) -> ColumnElement[bool]:
        """The row, only while the claim that made attempt `attempts` still holds it (the fence)."""
        c = self.table.c
        return and_(c.id == row_id, c.status == SENDING, c.attempts == attempts)
