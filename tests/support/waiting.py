"""Waiting on observed state rather than on a guessed delay: a loaded machine only makes it slower."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY


async def eventually(condition: Callable[[], bool | Awaitable[bool]], what: str,
                     within: float = 20.0) -> None:
    """Return once `condition` (sync or async) holds, polled; fail after `within` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        outcome = condition()
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    """A sample of this process's Prometheus registry (in-process apps share it), 0 if absent."""
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def events_awaiting_acks(service: str = "ingest") -> float:
    """Events the service's producer holds for Kafka's acks (`churnwatch_produce_in_flight_events`)."""
    return metric("churnwatch_produce_in_flight_events", {"service": service})
