"""Pure rules for what a Segment client may send, and how events are attributed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ingest.attribution import Membership, attribute
from services.ingest.segment import (
    derive_message_id,
    encode_wire,
    event_id_for,
    occurred_at,
    to_envelope,
    wire_envelope,
)
from services.ingest.validation import Limits, validate_batch, validate_single
from shared.events import EventType, decode, encode
from shared.http import ApiError

LIMITS = Limits(max_event_bytes=32_000, max_batch_items=2_500)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def fields(exc: pytest.ExceptionInfo[ApiError]) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.value.errors}


def test_track_needs_an_event_and_someone() -> None:
    with pytest.raises(ApiError) as exc:
        validate_single({"properties": {}}, "track", LIMITS)
    assert exc.value.status == 400
    found = fields(exc)
    assert "event" in found
    assert any("userId or anonymousId" in m for m in found.values())


def test_null_user_id_is_fine_when_anonymous_id_is_set() -> None:
    [item] = validate_single({"userId": None, "anonymousId": "anon-1", "event": "x"}, "track", LIMITS)
    assert item.message.anonymous_id == "anon-1"


def test_batch_errors_name_the_item_and_field() -> None:
    body = {"batch": [
        {"type": "track", "userId": "u1", "event": "ok"},
        {"type": "track", "userId": "u1"},
        {"type": "group", "userId": "u1"},
        {"type": "bogus", "userId": "u1"},
        "not an object",
    ]}
    with pytest.raises(ApiError) as exc:
        validate_batch(body, LIMITS)
    found = fields(exc)
    assert "batch[1].event" in found
    assert "batch[2].groupId" in found
    assert "batch[3].type" in found
    assert found["batch[4]"] == "must be a JSON object"


def test_wrong_types_are_named() -> None:
    with pytest.raises(ApiError) as exc:
        validate_single({"userId": "u", "event": "x", "properties": "nope", "timestamp": "yesterday"},
                        "track", LIMITS)
    found = fields(exc)
    assert set(found) == {"properties", "timestamp"}


def test_oversized_event_and_batch() -> None:
    small = Limits(max_event_bytes=200, max_batch_items=2)
    with pytest.raises(ApiError) as exc:
        validate_single({"userId": "u", "event": "x", "properties": {"p": "y" * 300}}, "track", small)
    assert "limit is 200" in exc.value.message
    with pytest.raises(ApiError) as exc:
        validate_batch({"batch": [{"type": "track", "userId": "u", "event": "x"}] * 3}, small)
    assert "3 items; the limit is 2" in exc.value.message


def test_batch_context_reaches_items() -> None:
    items = validate_batch({"context": {"groupId": "acme"},
                            "batch": [{"type": "track", "userId": "u", "event": "x"}]}, LIMITS)
    accounts, _ = attribute([i.message for i in items], [NOW], {})
    assert accounts == ["acme"]


def test_attribution_order_and_memberships() -> None:
    items = validate_batch({"batch": [
        {"type": "track", "userId": "u1", "event": "before group"},
        {"type": "group", "userId": "u1", "groupId": "acme"},
        {"type": "track", "userId": "u1", "event": "after group"},
        {"type": "track", "userId": "u1", "event": "explicit", "properties": {"account_id": "other"}},
        {"type": "track", "userId": "u2", "event": "known from db"},
        {"type": "track", "anonymousId": "a", "event": "nobody knows"},
    ]}, LIMITS)
    known = {"u2": Membership("globex", NOW)}
    accounts, changed = attribute([i.message for i in items], [NOW] * len(items), known)
    assert accounts == [None, "acme", "acme", "other", "globex", None]
    assert changed == {"u1": Membership("acme", NOW)}


def test_an_older_group_call_does_not_override_a_newer_membership() -> None:
    items = validate_single({"userId": "u1", "groupId": "old"}, "group", LIMITS)
    earlier = datetime(2026, 1, 1, tzinfo=UTC)
    accounts, changed = attribute([items[0].message], [earlier], {"u1": Membership("new", NOW)})
    assert accounts == ["old"]  # the group call itself still belongs to the group it names
    assert changed == {}


def test_envelope_uses_client_time_and_message_id() -> None:
    [item] = validate_single({"userId": "u", "event": "Report Built", "messageId": "m-1",
                              "timestamp": "2026-11-01T10:00:00+01:00"}, "track", LIMITS)
    envelope = to_envelope(item.message, event_id="m-1", account_id="acme", source="web",
                           received_at=NOW)
    assert envelope.type is EventType.TRACK
    assert envelope.occurred_at == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert envelope.payload["event"] == "Report Built"
    assert occurred_at(item.message, NOW) == envelope.occurred_at


def test_derived_ids_are_stable_for_retries_and_differ_for_different_events() -> None:
    first = {"type": "track", "userId": "u", "event": "x", "timestamp": "2026-11-01T00:00:00Z",
             "sentAt": "2026-11-01T00:00:01Z"}
    retry = {**first, "sentAt": "2026-11-01T00:05:00Z"}
    other = {**first, "event": "y"}
    assert derive_message_id(first) == derive_message_id(retry)
    assert derive_message_id(first) != derive_message_id(other)


def test_an_id_is_derived_only_for_a_message_with_its_own_timestamp() -> None:
    timed = {"type": "track", "userId": "u", "event": "x", "timestamp": "2026-11-01T00:00:00Z"}
    [a], [b] = validate_single(timed, "track", LIMITS), validate_single(dict(timed), "track", LIMITS)
    assert event_id_for(a.message, a.raw) == event_id_for(b.message, b.raw) == derive_message_id(a.raw)
    # Without one, the same content twice is two events: each gets an id of its own.
    untimed = {"type": "track", "userId": "u", "event": "x"}
    [c], [d] = validate_single(untimed, "track", LIMITS), validate_single(dict(untimed), "track", LIMITS)
    assert event_id_for(c.message, c.raw) != event_id_for(d.message, d.raw)
    assert event_id_for(c.message, c.raw).startswith("generated-")
    nulled = {**untimed, "timestamp": None}
    [e] = validate_single(nulled, "track", LIMITS)
    assert event_id_for(e.message, e.raw) != event_id_for(e.message, e.raw)
    # An explicit messageId always wins.
    [f] = validate_single({**untimed, "messageId": "m-7"}, "track", LIMITS)
    assert event_id_for(f.message, f.raw) == "m-7"


@pytest.mark.parametrize("raw", [
    {"type": "track", "userId": "u", "event": "Report Built", "properties": {"rows": 3, "nested": {"a": [1]}},
     "timestamp": "2026-11-01T10:00:00.5+01:00"},
    {"type": "page", "anonymousId": "a", "name": "Pricing", "properties": {"path": "/pricing"}},
    {"type": "screen", "userId": "u", "name": "Home"},
    {"type": "identify", "userId": "u", "traits": {"email": "u@example.com"}},
    {"type": "group", "userId": "u", "groupId": "acme", "traits": {"plan": "pro", "seats": 40}},
    {"type": "alias", "userId": "u", "previousId": "anon-1"},
], ids=["track", "page", "screen", "identify", "group", "alias"])
def test_the_hot_path_bytes_are_the_envelope_contract(raw: dict[str, object]) -> None:
    """Ingest encodes dicts straight to bytes; they must be exactly what the Envelope model gives."""
    [item] = validate_batch({"batch": [raw]}, LIMITS)
    occurred = occurred_at(item.message, NOW)
    wire = wire_envelope(item.message, event_id="e-1", account_id="acme", source="web",
                         received_at=NOW, occurred=occurred)
    envelope = decode(encode_wire(wire))
    assert encode(envelope) == encode_wire(wire)
    assert envelope == to_envelope(item.message, event_id="e-1", account_id="acme", source="web",
                                   received_at=NOW)
