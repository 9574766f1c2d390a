"""A bound on the request bodies one ingest process holds in memory at once.

Events waiting for Kafka are bounded by the publisher (`CHURNWATCH_MAX_IN_FLIGHT_EVENTS`);
this bounds what comes before: bodies being read, decompressed, parsed and validated. A
request reserves its worst case up front (its declared length, or the request limit when it
is gzip-encoded or sends no length) and is refused with 503 `overloaded` at once when the
reservation does not fit, instead of letting a flood of large requests grow memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.http import ApiError


class MemoryBudget:
    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self.reserved = 0

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        if self.reserved + size > self.limit_bytes:
            raise ApiError(503, "overloaded",
                           f"{self.reserved} bytes of requests are already being handled (limit "
                           f"{self.limit_bytes}); nothing was accepted, retry shortly",
                           headers={"Retry-After": "1"})
        self.reserved += size
        try:
            yield
        finally:
            self.reserved -= size


def worst_case_size(content_length: str | None, content_encoding: str | None, limit: int) -> int:
    """Bytes a request may occupy once read and decoded: never more than the request limit."""
    if content_encoding and content_encoding.strip().lower() != "identity":
        return limit
    if content_length is not None and content_length.isdigit():
        return min(int(content_length), limit)
    return limit
