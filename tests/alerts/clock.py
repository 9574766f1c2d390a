"""A clock the test moves by hand: time passes only when the test says so."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta


class ManualClock:
    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when

    async def sleep(self, seconds: float) -> None:
        # Waiting does not move this clock: pacing and backoff happen in the test's own time.
        await asyncio.sleep(0)
