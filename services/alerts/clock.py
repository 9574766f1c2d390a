"""The time alerts' logic runs on: the wall clock in production, a hand-moved one in tests.

Everything time-based (cooldowns, quiet hours, snooze expiry, escalation, digests, retry
and pacing schedules) reads `clock.now()`; pure functions take `now` as an argument. Tests
move a manual clock instead of sleeping, so an "after four hours" test takes milliseconds.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))
