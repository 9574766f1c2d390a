"""Exponential back-off: how long to wait before a retry. Pure."""

from __future__ import annotations

# 2.0 ** 1024 overflows a float; any step that large is past every cap anyway.
_MAX_DOUBLINGS = 1000


def exponential_backoff(retry: int, first: float, cap: float) -> float:
    """The wait before retry number `retry` (0 for the first): `first`, doubled each retry, at most `cap`."""
    return min(first * 2.0 ** min(max(retry, 0), _MAX_DOUBLINGS), cap)
