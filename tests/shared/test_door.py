"""The door's rules on their own (shared/door.py): every NUL found and named, the window's edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from shared.door import DEFAULT_EVENT_WINDOW, EventTimeWindow, may_hold_nul, nul_errors
from shared.events import InvalidEvent, decode

RECEIVED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_every_nul_is_named_by_its_path() -> None:
    body = {"batch": [{"traits": {"ok": "fine"}},
                      {"traits": {"name": "A\x00", "k\x00": [1, {"deep": "\x00"}]}}]}
    found = {e["field"] for e in nul_errors(body)}
    assert found == {"batch[1].traits.name", "batch[1].traits.k\\u0000",
                     "batch[1].traits.k\x00[1].deep"}


def test_a_clean_body_has_no_errors_and_skips_the_walk() -> None:
    body = {"a": ["b", {"c": 1.5, "d": None}], "e": True}
    assert nul_errors(body) == []
    assert not may_hold_nul(orjson.dumps(body))
    assert may_hold_nul(orjson.dumps({"a": "\x00"}))


def test_deep_nesting_does_not_exhaust_recursion() -> None:
    deep: object = "\x00"
    for _ in range(5000):
        deep = [deep]
    assert len(nul_errors(deep)) == 1


@pytest.mark.parametrize(("moment", "allowed"), [
    (RECEIVED - timedelta(days=1826), True),
    (RECEIVED - timedelta(days=1826, seconds=1), False),
    (RECEIVED + timedelta(hours=24), True),
    (RECEIVED + timedelta(hours=24, seconds=1), False),
    (datetime(1, 1, 1, tzinfo=UTC), False),
    (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), False),
    (datetime(2026, 12, 1, 13, 0), True),  # no zone: UTC
])
def test_window_edges(moment: datetime, allowed: bool) -> None:
    assert (DEFAULT_EVENT_WINDOW.problem(moment, RECEIVED) is None) is allowed


def test_a_received_time_at_the_calendars_edge_is_refused_not_raised() -> None:
    edge = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    assert EventTimeWindow.of(1, 24).problem(edge, edge) is not None


def envelope(**changes: object) -> bytes:
    base = {"event_id": "e1", "type": "track", "source": "test", "payload": {"event": "Built"},
            "occurred_at": "2026-12-01T12:00:00Z", "received_at": "2026-12-01T12:00:00Z"}
    return orjson.dumps({**base, **changes})


def test_decode_refuses_what_the_door_refuses() -> None:
    assert decode(envelope()).event_id == "e1"
    with pytest.raises(InvalidEvent, match=r"payload\.event"):
        decode(envelope(payload={"event": "Bu\x00ilt"}))
    with pytest.raises(InvalidEvent, match="user_id"):
        decode(envelope(user_id="u\x00"))
    with pytest.raises(InvalidEvent, match="occurred_at"):
        decode(envelope(occurred_at="9999-12-31T23:59:59Z"))
    with pytest.raises(InvalidEvent, match="occurred_at"):
        decode(envelope(occurred_at="0001-01-01T00:00:00Z"))
    narrow = EventTimeWindow.of(1, 1)
    with pytest.raises(InvalidEvent):
        decode(envelope(occurred_at="2026-11-20T12:00:00Z"), narrow)
