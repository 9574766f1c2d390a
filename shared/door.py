"""What no event may carry into the pipeline, checked where events enter and again where they
are consumed: text holding NUL (U+0000), and event times far from when the event was received.

PostgreSQL refuses NUL in text and `\\u0000` in JSONB, so one such event accepted with a 200
would crash every later database write of it; a timestamp in year 9999 (or 0001) would make
event-time logic walk millions of days. Pure: no I/O, no settings lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

NUL = "\x00"
# How NUL appears in JSON text; a raw 0x00 byte is not valid JSON but is checked for too.
_NUL_MARKERS = (b"\\u0000", b"\x00")
NUL_MESSAGE = "must not contain the NUL character (U+0000)"
NUL_KEY_MESSAGE = "a key must not contain the NUL character (U+0000)"


def may_hold_nul(raw: bytes) -> bool:
    """False when the JSON text certainly decodes to no NUL: lets clean bodies skip the walk."""
    return any(marker in raw for marker in _NUL_MARKERS)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def nul_errors(value: Any, path: str = "") -> list[dict[str, str]]:
    """`{field, message}` for every text (value or dict key) in `value` that holds NUL,
    each named by its path from `path` as 400s name fields (`batch[3].traits.name`)."""
    errors: list[dict[str, str]] = []
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:  # iterative: a deeply nested body must not exhaust the recursion limit
        node, where = stack.pop()
        if type(node) is str:
            if NUL in node:
                errors.append({"field": where or "body", "message": NUL_MESSAGE})
        elif isinstance(node, dict):
            for key, item in node.items():
                name = str(key)
                if NUL in name:
                    errors.append({"field": _join(where, name.replace(NUL, "\\u0000")),
                                   "message": NUL_KEY_MESSAGE})
                stack.append((item, _join(where, name)))
        elif isinstance(node, list | tuple):
            stack.extend((item, f"{where}[{index}]") for index, item in enumerate(node))
    return errors


@dataclass(frozen=True)
class EventTimeWindow:
    """How far before and after its receipt an event may say it happened."""

    max_age: timedelta
    max_future: timedelta

    @classmethod
    def of(cls, max_age_days: float, max_future_hours: float) -> EventTimeWindow:
        return cls(timedelta(days=max_age_days), timedelta(hours=max_future_hours))

    def bounds(self, received_at: datetime) -> tuple[datetime, datetime] | None:
        """The earliest and latest times allowed; None when `received_at` is at the calendar's edge."""
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        try:
            return received_at - self.max_age, received_at + self.max_future
        except OverflowError:
            return None

    def problem(self, moment: datetime, received_at: datetime) -> str | None:
        """Why `moment` is refused, or None when it lies within the window around `received_at`."""
        if moment.tzinfo is None:  # a time without zone is read as UTC everywhere it enters
            moment = moment.replace(tzinfo=UTC)
        if received_at.tzinfo is None:
            received_at = received_at.replace(tzinfo=UTC)
        bounds = self.bounds(received_at)
        if bounds is None:
            return "the time it was received is out of range"
        if bounds[0] <= moment <= bounds[1]:
            return None
        return (f"must be no more than {_span(self.max_age)} before and {_span(self.max_future)} "
                f"after the time the event was received ({received_at.isoformat()})")

    def errors(self, times: dict[str, datetime | None], received_at: datetime
               ) -> list[dict[str, str]]:
        """`{field, message}` for each named time outside the window (None: not given)."""
        found = []
        for field, moment in times.items():
            if moment is not None and (problem := self.problem(moment, received_at)):
                found.append({"field": field, "message": problem})
        return found


def _span(span: timedelta) -> str:
    hours = span.total_seconds() / 3600
    if hours >= 48 and hours % 24 == 0:
        return f"{int(hours // 24)} days"
    return f"{hours:g} hours"


DEFAULT_EVENT_WINDOW = EventTimeWindow.of(max_age_days=1826, max_future_hours=24)
