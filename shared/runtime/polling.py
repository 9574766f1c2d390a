"""A background loop of passes: each pass, then a wait that a wake or a stop cuts short."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress


class PollingLoop:
    """Runs passes of work until `stop()`; between passes waits up to an interval, less when woken.

    The wake is cleared as a pass starts, so a `wake()` that comes during a pass (new work
    stored meanwhile) starts the next pass at once instead of after the interval.
    """

    def __init__(self) -> None:
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Ends `run` after the pass in flight; a `pause` under way returns at once."""
        self._stopping.set()
        self._wake.set()

    async def pause(self, seconds: float) -> None:
        """Until woken, stopped, or `seconds` have passed."""
        with suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)

    async def run(self, one_pass: Callable[[], Awaitable[bool]], interval: float) -> None:
        """`one_pass` until stopped; it returns True when more work is due now (no wait then).
        What a pass raises ends the loop: a pass that must outlive failures catches them itself."""
        while not self.stopping:
            self._wake.clear()
            if await one_pass():
                continue
            await self.pause(interval)
