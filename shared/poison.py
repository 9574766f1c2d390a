"""Poison messages: which failures an event's content can cause, and how many dead letters are too many.

A batch that fails with an error its content could cause (the database refusing a value, a
handler's ValueError) is retried in pieces by `DurableConsumer` to find the events that make it
fail; an infrastructure error (a connection refused, the database or Kafka away) never is: it
dead-letters nothing and the batch is retried whole, with back-off.

`DeadLetterLimit` bounds dead-lettering, as arroyo's DlqLimit does: per partition, a consumer
stops rather than dead-letter more than `max_ratio` x `window` of a partition's last `window`
offsets, or more than `max_consecutive` events in a row, so a bad deploy (or a handler bug that
raises on every event) stops the pipeline loudly instead of draining a topic into the dead-letter
topic. The state lives in memory: a restarted consumer starts counting afresh.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import TopicPartition
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

# SQLSTATE classes an event's values can cause: data exception (22: a NUL in text or JSONB, a
# number out of range, an invalid datetime), integrity constraint violation (23), program limit
# exceeded (54: an index row or a value too large). Everything else (08 connection, 53
# resources, 57 operator intervention, 40 serialization or deadlock, ...) is the infrastructure's.
_CONTENT_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})


def caused_by_content(exc: BaseException) -> bool:
    """Whether an event's content could have caused `exc` (so isolating the event may help)."""
    if isinstance(exc, DeadLetterLimitExceeded):
        return False
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        if isinstance(state, str) and state:
            return state[:2] in _CONTENT_SQLSTATE_CLASSES
        # No SQLSTATE: a value the driver refused before sending (asyncpg's DataError for an
        # integer out of int64 range, say).
        return isinstance(exc, (DataError, IntegrityError))
    if isinstance(exc, StatementError):
        # A bind parameter that could not be converted: the value's fault.
        return exc.orig is not None and caused_by_content(exc.orig)
    # orjson.JSONEncodeError is a TypeError (an integer past 64 bits); pydantic's
    # ValidationError and UnicodeError are ValueErrors; OverflowError, ZeroDivisionError and
    # decimal's errors are ArithmeticErrors. Other TypeErrors, KeyErrors and AttributeErrors
    # are taken for bugs: retried, never dead-lettered.
    return isinstance(exc, (ValueError, ArithmeticError, orjson.JSONEncodeError))


def describe(exc: BaseException) -> str:
    """A dead letter's reason: the error without the statement and its (large) parameters."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        orig = exc.orig
        state = getattr(orig, "sqlstate", None)
        detail = " ".join(str(orig).split())
        code = f" [{state}]" if state else ""
        return f"database refused the event: {type(orig).__name__}{code}: {detail}"[:2000]
    return f"handler failed on the event: {type(exc).__name__}: {exc}"[:2000]


class DeadLetterLimitExceeded(RuntimeError):
    """A partition passed the dead-letter limit: the consumer stops (never retried)."""

    def __init__(self, message: str, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class DeadLetterLimitSettings:
    max_ratio: float
    window: int
    max_consecutive: int


class _PartitionCount:
    __slots__ = ("invalid", "run")

    def __init__(self) -> None:
        self.invalid: deque[int] = deque()  # offsets of recent dead letters, oldest first
        self.run = 0  # dead letters in a row at the partition's end


class DeadLetterLimit:
    """Per-partition dead-letter counts, checked before a batch's dead letters are committed.

    `check` is pure (the batch may still roll back); `record` applies a committed batch. A clean
    batch costs one dict lookup per partition.
    """

    def __init__(self, settings: DeadLetterLimitSettings) -> None:
        self._settings = settings
        self._ceiling = int(settings.max_ratio * settings.window)
        self._counts: dict[TopicPartition, _PartitionCount] = {}

    @property
    def active(self) -> bool:
        """Whether some partition has recent dead letters (else a clean batch changes nothing)."""
        return bool(self._counts)

    def check(
        self, batch: Mapping[TopicPartition, Sequence[Any]],
        dead: Mapping[TopicPartition, Iterable[int]],
    ) -> dict[TopicPartition, tuple[list[int], int]]:
        """The counts the batch would leave (`batch`: each partition's records, with `.offset`,
        in order; `dead`: the offsets dead-lettered); raises DeadLetterLimitExceeded if a
        partition passes the limit."""
        pending: dict[TopicPartition, tuple[list[int], int]] = {}
        for tp, records in batch.items():
            if not records:
                continue
            bad = set(dead.get(tp, ()))
            count = self._counts.get(tp)
            if not bad:
                if count is not None:
                    pending[tp] = (self._trimmed(count.invalid, records[-1].offset), 0)
                continue
            offsets = [record.offset for record in records]
            # Dead letters in a row, carried over from the partition's previous batches; the
            # longest run inside the batch counts too (bad events followed by one good one).
            current = count.run if count is not None else 0
            longest = current
            for offset in offsets:
                current = current + 1 if offset in bad else 0
                longest = max(longest, current)
            run = current
            recent = list(count.invalid) if count is not None else []
            recent += sorted(bad)
            recent = self._trimmed(recent, offsets[-1])
            if longest > self._settings.max_consecutive:
                raise DeadLetterLimitExceeded(
                    f"{tp.topic}[{tp.partition}]: {longest} events in a row dead-lettered, more than "
                    f"the limit of {self._settings.max_consecutive} "
                    "(CHURNWATCH_CONSUMER_DEAD_LETTER_MAX_CONSECUTIVE)", "consecutive")
            if len(recent) > self._ceiling:
                raise DeadLetterLimitExceeded(
                    f"{tp.topic}[{tp.partition}]: {len(recent)} of the last {self._settings.window} "
                    f"offsets dead-lettered, more than {self._settings.max_ratio:.2%} "
                    "(CHURNWATCH_CONSUMER_DEAD_LETTER_MAX_RATIO over "
                    "CHURNWATCH_CONSUMER_DEAD_LETTER_RATIO_WINDOW)", "ratio")
            pending[tp] = (recent, run)
        return pending

    def record(self, pending: Mapping[TopicPartition, tuple[list[int], int]]) -> None:
        for tp, (recent, run) in pending.items():
            count = self._counts.setdefault(tp, _PartitionCount())
            count.invalid = deque(recent)
            count.run = run
            if not recent and not run:
                del self._counts[tp]

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._counts.pop(tp, None)

    def _trimmed(self, offsets: Iterable[int], last: int) -> list[int]:
        floor = last - self._settings.window + 1
        return [o for o in offsets if o >= floor]
