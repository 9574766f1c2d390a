"""Per-source token buckets: how many events a write key's source may send, and when to retry.

Pure (the clock is passed in), so the arithmetic is unit-tested without sleeping. The
buckets live in one ingest process: with N instances behind a balancer a source may send
up to N times the configured rate, which is what a per-instance limit can promise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

Clock = Callable[[], float]


@dataclass
class TokenBucket:
    rate: float
    burst: int
    tokens: float
    updated: float

    def take(self, count: int, now: float) -> float:
        """Take `count` tokens; 0.0 if they were there, else the seconds until they would be.

        A request larger than the burst is let through once the bucket is full and leaves it
        in debt, so an oversized (but valid) batch is slowed down rather than refused forever.
        """
        self.tokens = min(float(self.burst), self.tokens + max(0.0, now - self.updated) * self.rate)
        self.updated = max(self.updated, now)
        needed = min(count, self.burst)
        if self.tokens >= needed:
            self.tokens -= count
            return 0.0
        return (needed - self.tokens) / self.rate


def retry_after_header(wait_seconds: float) -> str:
    """`Retry-After` in whole seconds, never 0 (a client would retry at once and fail again)."""
    return str(max(1, math.ceil(wait_seconds)))


class RateLimiter:
    """One token bucket per source, created full on the source's first request."""

    def __init__(self, rate: float, burst: int, clock: Clock = time.monotonic) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError("rate and burst must be positive")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def acquire(self, source: str, count: int) -> float:
        """0.0 if `source` may send `count` events now, else the seconds to wait first."""
        now = self._clock()
        bucket = self._buckets.get(source)
        if bucket is None:
            bucket = self._buckets[source] = TokenBucket(self.rate, self.burst, float(self.burst), now)
        return bucket.take(count, now)
