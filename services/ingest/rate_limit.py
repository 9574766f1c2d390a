"""What a sender over its rate is told: 429 with `Retry-After` in whole seconds.

The buckets themselves live in PostgreSQL (services/ingest/store.py), one per write key
(and one per signed webhook source), refilled on the database's clock: a key's rate holds
across every ingest instance behind a balancer, and costs no extra round trip because the
same statement checks the key and its revocation.
"""

from __future__ import annotations

import math

from shared.http import ApiError


def retry_after_header(wait_seconds: float) -> str:
    """`Retry-After` in whole seconds, never 0 (a client would retry at once and fail again)."""
    return str(max(1, math.ceil(wait_seconds)))


def rate_limited(who: str, wait_seconds: float, per_second: float, burst: int) -> ApiError:
    return ApiError(429, "rate_limited",
                    f"{who} is over its limit of {per_second:g} events/s (burst {burst}); nothing "
                    "was accepted, retry after the Retry-After seconds",
                    headers={"Retry-After": retry_after_header(wait_seconds)})
