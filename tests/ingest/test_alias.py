"""Segment `alias` travels as an identify whose only trait names the previous id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.ingest.app import create_app
from services.ingest.segment import ALIAS_TRAIT, to_envelope
from services.ingest.validation import Limits, validate_single
from shared.events import EventType
from shared.http import ApiError
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.kafka import read_topic

LIMITS = Limits(max_event_bytes=32_000, max_batch_items=2_500)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_alias_becomes_an_identify_naming_the_previous_id() -> None:
    [item] = validate_single({"previousId": "anon-7", "userId": "u1", "messageId": "a1"},
                             "alias", LIMITS)
    envelope = to_envelope(item.message, event_id="a1", account_id=None, source="s", received_at=NOW)
    assert envelope.type is EventType.IDENTIFY
    assert envelope.user_id == "u1"
    assert envelope.payload["traits"] == {ALIAS_TRAIT: "anon-7"}


@pytest.mark.parametrize(("body", "field"), [({"userId": "u1"}, "previousId"),
                                             ({"previousId": "p", "anonymousId": "a"}, "body")])
def test_alias_needs_previous_id_and_user_id(body: dict[str, str], field: str) -> None:
    with pytest.raises(ApiError) as exc:
        validate_single(body, "alias", LIMITS)
    assert any(e["field"] == field for e in exc.value.errors), exc.value.errors


async def test_alias_through_the_api(settings: Settings) -> None:
    async with serving(create_app(settings)) as client:
        single = await client.post("/v1/alias", json={
            "writeKey": "test-write-key", "previousId": "anon-7", "userId": "u1", "messageId": "a1",
            "context": {"groupId": "acme"}})
        assert single.status_code == 200, single.text
        batched = await client.post("/v1/batch", json={"writeKey": "test-write-key", "batch": [
            {"type": "alias", "previousId": "old-id", "userId": "u2", "messageId": "a2"}]})
        assert batched.status_code == 200, batched.text
    traits = {e.event_id: e for e in await read_topic(settings, Topics.from_settings(settings).traits)}
    assert set(traits) == {"a1", "a2"}
    assert traits["a1"].type is EventType.IDENTIFY
    assert traits["a1"].account_id == "acme"
    assert traits["a2"].payload["traits"] == {ALIAS_TRAIT: "old-id"}
