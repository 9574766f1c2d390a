"""Decoding envelopes: the quick path for plainly valid envelopes gives what the model gives."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shared.events import Envelope, InvalidEvent, _quick_envelope, decode, trusted_envelope

VALID: dict[str, Any] = {
    "schema_version": 1, "event_id": "evt-1", "type": "track", "account_id": "acct-1",
    "user_id": "u-1", "occurred_at": "2026-03-01T10:00:00.250+02:00",
    "received_at": "2026-03-01T08:00:01Z", "source": "ingest",
    "payload": {"event": "Report Built", "properties": {"n": 3}},
}
# Values around each field's edges: some valid, some not, some only pydantic can judge.
EDGES: dict[str, list[Any]] = {
    "schema_version": [1, 2, True, 1.0, "1", None],
    "event_id": ["", "e", "e" * 200, "e" * 201, 5, None],
    "type": ["track", "group", "TRACK", "unknown", None, 3],
    "account_id": [None, "acct-2", "", 5],
    "user_id": [None, "u", 7],
    "occurred_at": ["2026-03-01T10:00:00Z", "2026-03-01T10:00:00.5-05:30", "2026-03-01T10:00:00",
                    "2026-13-01T10:00:00Z", "2026-03-01T24:00:00Z", "2026-03-01T10:00:60Z",
                    "2026-03-01 10:00:00Z", "2026-03-01T10:00:00.1234567Z", 1_772_000_000,
                    "yesterday", None],
    "received_at": ["2026-03-01T10:00:00+00:00", "2026-W09-1T10:00:00Z", None],
    "source": ["", "s", "s" * 100, "s" * 101, None],
    "payload": [{}, {"a": [1, {"b": None}]}, [], None, "x"],
    "extra_field": ["ignored"],
}


def by_model(raw: bytes) -> Envelope | str:
    try:
        return Envelope.model_validate(orjson.loads(raw))
    except Exception as exc:
        return f"invalid: {exc}"


def by_decode(raw: bytes) -> Envelope | str:
    try:
        return decode(raw)
    except InvalidEvent as exc:
        return f"invalid: {exc}"


def same(raw: bytes) -> None:
    expected, got = by_model(raw), by_decode(raw)
    assert got == expected
    if isinstance(got, Envelope) and isinstance(expected, Envelope):
        assert got.model_fields_set == expected.model_fields_set
        assert got.occurred_at.utcoffset() == expected.occurred_at.utcoffset()
        assert got.occurred_at.tzinfo == expected.occurred_at.tzinfo


def test_a_plain_envelope_takes_the_quick_path_and_equals_the_model() -> None:
    assert _quick_envelope(dict(VALID)) == Envelope.model_validate(VALID)
    same(orjson.dumps(VALID))


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in EDGES.items() for v in values])
def test_every_edge_decodes_as_the_model_says(field: str, value: Any) -> None:
    same(orjson.dumps({**VALID, field: value}))


@pytest.mark.parametrize("field", list(VALID))
def test_a_missing_field_decodes_as_the_model_says(field: str) -> None:
    same(orjson.dumps({k: v for k, v in VALID.items() if k != field}))


@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(list(EDGES)),
                               st.integers(0, 10), max_size=4))
def test_combinations_decode_as_the_model_says(changes: dict[str, int]) -> None:
    envelope = dict(VALID)
    for field, pick in changes.items():
        envelope[field] = EDGES[field][pick % len(EDGES[field])]
    same(orjson.dumps(envelope))


def test_not_json_and_empty_are_invalid() -> None:
    with pytest.raises(InvalidEvent):
        decode(b"{not json")
    with pytest.raises(InvalidEvent):
        decode(None)
    with pytest.raises(InvalidEvent):
        decode(b"[1, 2]")


def test_a_trusted_envelope_equals_the_validated_one() -> None:
    validated = Envelope.model_validate(VALID)
    built = trusted_envelope(validated.event_id, validated.type, validated.account_id,
                             validated.user_id, validated.occurred_at, validated.received_at,
                             validated.source, validated.payload)
    assert built == validated
    assert built.model_dump(mode="json") == validated.model_dump(mode="json")
    assert built.partition_key() == validated.partition_key()
    with pytest.raises(ValidationError):  # still frozen
        built.event_id = "other"  # type: ignore[misc]
