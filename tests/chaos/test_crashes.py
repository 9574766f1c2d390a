"""kill -9 of each consuming service while the official Segment client keeps sending.

The whole system runs as real processes on a real broker and PostgreSQL. While the client's
events flow, scoring, alerts and surveys are each killed with SIGKILL once they are consuming
this load, and restarted on the same port. The stream keeps flowing until every kill is done
(see SegmentLoad.enough), so each lands mid-stream. Afterwards nothing is lost, nothing is
counted twice, nothing is dead-lettered, and every service is ready.

(tests/scoring/test_crash_recovery.py and tests/alerts/test_crash.py prove the state of one
service equals an uninterrupted run's; this is the whole pipeline under load.)
"""

from __future__ import annotations

import asyncio

from tests.chaos.pipeline import (
    GROUPS,
    assert_nothing_dead_lettered,
    assert_nothing_lost_nothing_twice,
    processed,
)
from tests.support.segment_load import SegmentLoad, sending
from tests.support.stack import Stack
from tests.support.waiting import eventually


async def test_kill_9_of_each_consumer_mid_stream_loses_nothing_and_counts_nothing_twice(
        stack: Stack) -> None:
    load = SegmentLoad(stack.url("ingest"), "kill", users=40, tracks_per_user=8, pause_seconds=0.02)
    with sending(load):
        for service in GROUPS:
            # Consuming this load, and behind it: more keeps coming while it is down.
            seen = len(await processed(stack.settings, service))

            async def consuming(service: str = service, seen: int = seen) -> bool:
                return len(await processed(stack.settings, service)) >= seen + 10
            await eventually(consuming, f"{service} consuming the load", within=120)
            await asyncio.to_thread(stack.crash_and_restart, service)
    await assert_nothing_lost_nothing_twice(stack, load)
    await assert_nothing_dead_lettered(stack.settings)
