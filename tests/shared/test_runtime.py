"""The polling loop and the back-off every service's background work runs on."""

from __future__ import annotations

import asyncio

import pytest

from shared.runtime.backoff import exponential_backoff
from shared.runtime.polling import PollingLoop
from tests.support.waiting import eventually

# Far longer than any test waits: a pass that comes early came from a wake, not the interval.
FOREVER = 3600.0


def test_backoff_doubles_from_the_first_wait_up_to_the_cap() -> None:
    assert [exponential_backoff(retry, 0.5, 10.0) for retry in range(7)] == [
        0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_backoff_takes_a_negative_retry_as_the_first_and_never_overflows() -> None:
    assert exponential_backoff(-1, 30.0, 3600.0) == 30.0
    assert exponential_backoff(5_000, 30.0, 3600.0) == 3600.0


class Passes:
    """A pass that counts itself and says "more is due" while `more` is above zero."""

    def __init__(self, more: int = 0) -> None:
        self.count = 0
        self.more = more

    async def __call__(self) -> bool:
        self.count += 1
        if self.more > 0:
            self.more -= 1
            return True
        return False


async def test_a_wake_starts_the_next_pass_before_the_interval() -> None:
    loop, passes = PollingLoop(), Passes()
    task = asyncio.create_task(loop.run(passes, FOREVER))
    await eventually(lambda: passes.count == 1, "the first pass runs at once")
    loop.wake()
    await eventually(lambda: passes.count == 2, "a wake runs the next pass")
    loop.stop()
    await asyncio.wait_for(task, timeout=10)
    assert passes.count == 2


async def test_a_pass_with_more_due_is_followed_by_the_next_at_once() -> None:
    loop, passes = PollingLoop(), Passes(more=3)
    task = asyncio.create_task(loop.run(passes, FOREVER))
    await eventually(lambda: passes.count == 4, "three passes with more due, then one without")
    loop.stop()
    await asyncio.wait_for(task, timeout=10)
    assert passes.count == 4


async def test_a_wake_during_a_pass_is_not_lost() -> None:
    loop = PollingLoop()
    started, release = asyncio.Event(), asyncio.Event()
    count = 0

    async def slow_pass() -> bool:
        nonlocal count
        count += 1
        if count == 1:
            started.set()
            await release.wait()
        return False

    task = asyncio.create_task(loop.run(slow_pass, FOREVER))
    await asyncio.wait_for(started.wait(), timeout=10)
    loop.wake()  # new work stored while the first pass runs
    release.set()
    await eventually(lambda: count == 2, "the wake during the pass runs one more")
    loop.stop()
    await asyncio.wait_for(task, timeout=10)


async def test_stop_ends_the_wait_at_once_and_no_pass_follows() -> None:
    loop, passes = PollingLoop(), Passes()
    task = asyncio.create_task(loop.run(passes, FOREVER))
    await eventually(lambda: passes.count == 1, "the first pass")
    assert not loop.stopping
    loop.stop()
    await asyncio.wait_for(task, timeout=10)  # not the hour-long interval
    assert loop.stopping
    assert passes.count == 1


async def test_pause_returns_on_its_timeout_without_a_wake() -> None:
    loop = PollingLoop()
    started = asyncio.get_running_loop().time()
    await loop.pause(0.05)
    assert asyncio.get_running_loop().time() - started >= 0.05
    assert not loop.stopping


async def test_what_a_pass_raises_ends_the_loop() -> None:
    async def failing() -> bool:
        raise RuntimeError("database away")

    with pytest.raises(RuntimeError, match="database away"):
        await asyncio.wait_for(PollingLoop().run(failing, FOREVER), timeout=10)
