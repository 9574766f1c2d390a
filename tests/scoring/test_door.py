"""Scoring's second line of defence (issue 17): an envelope that got past the door (published
straight to Kafka) with NUL text or an event time far from its receipt is dead-lettered, and
an event dated far ahead does not stall the service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.scoring.app import create_app
from services.scoring.engine import MAX_TICKED_GAP_DAYS
from services.scoring.model import DAY
from shared.door import DEFAULT_EVENT_WINDOW
from shared.events import encode
from shared.publisher import EncodedEvent, EventPublisher
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.scoring.events import T0, run, usage
from tests.scoring.test_scoring_service import health_when
from tests.support.apps import serving
from tests.support.infra import API_AUTH
from tests.support.kafka import read_raw_topic
from tests.support.waiting import eventually

Scoring = tuple[httpx.AsyncClient, EventPublisher, Settings]
FAR_AHEAD = datetime(9999, 12, 30, tzinfo=UTC)


@pytest.fixture
async def scoring(infra: Any) -> AsyncIterator[Scoring]:
    settings = infra.fresh_settings()
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    async with serving(create_app(settings)) as client:
        yield client, publisher, settings
    await publisher.stop()


async def test_nul_text_and_far_event_times_are_dead_lettered(scoring: Scoring) -> None:
    client, publisher, settings = scoring
    topics = Topics.from_settings(settings)
    with_nul = usage("with-nul", "acme", T0, name="Report\u0000 Built")
    with_nul_key = usage("with-nul-key", "acme", T0).model_copy(
        update={"payload": {"event": "Built", "properties": {"plan\u0000": "pro"}}})
    far_from_receipt = usage("far", "acme", T0).model_copy(update={"occurred_at": FAR_AHEAD})
    # Encoded as any producer would; ingest would have refused each with a 400.
    await publisher.publish_encoded([EncodedEvent(topics.usage, e.partition_key(), encode(e))
                                     for e in (with_nul, with_nul_key, far_from_receipt)])
    await publisher.publish([usage("clean", "acme", T0)])

    health = await health_when(client, "acme", lambda h: h["events_applied"] >= 1)
    assert health["events_applied"] == 1  # the clean event, after the three bad ones

    async def dead_lettered() -> bool:
        values = await read_raw_topic(settings, topics.dead_letter)
        return len(values) == 3
    await eventually(dead_lettered, "the three bad envelopes on the dead-letter topic")
    values = b"".join(v or b"" for v in await read_raw_topic(settings, topics.dead_letter))
    for event_id in (b"with-nul", b"with-nul-key", b"far"):
        assert b'"event_id":"' + event_id + b'"' in values
    assert (await client.get("/readyz")).status_code == 200


async def test_an_event_dated_far_ahead_does_not_stall_scoring(scoring: Scoring) -> None:
    client, publisher, _ = scoring
    # Received "then" too, so decode lets it through: the engine itself must stay bounded.
    far = usage("far", "future", T0).model_copy(update={"occurred_at": FAR_AHEAD,
                                                        "received_at": FAR_AHEAD})
    await publisher.publish([usage("before", "future", T0), far])
    await health_when(client, "future", lambda h: h["events_applied"] == 2, timeout=60.0)
    assert (await client.get("/healthz")).status_code == 200

    await publisher.publish([usage("next", "acme", T0)])
    health = await health_when(client, "acme", lambda h: h["events_applied"] == 1)
    assert health["score"] is not None


async def test_renewals_from_near_the_end_of_the_calendar_is_a_400(scoring: Scoring) -> None:
    client, _, _ = scoring
    answer = await client.get("/v1/portfolio/renewals", params={"from": "9999-12-31"}, headers=API_AUTH)
    assert answer.status_code == 400, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["from"]
    assert (await client.get("/v1/portfolio/renewals", params={"from": "2026-12-01"},
                             headers=API_AUTH)).status_code == 200


def test_the_engine_bridges_a_gap_of_millennia_and_ticks_normal_gaps_in_full() -> None:
    far = usage("far", "a", FAR_AHEAD)
    engine = run([usage("now", "a", T0), far])  # ~2.9 million days: fires 2,000 ticks
    assert engine.last_event_at == FAR_AHEAD.timestamp()
    assert engine.ticked_until is not None and engine.ticked_until <= FAR_AHEAD.timestamp()
    # A gap under the limit is ticked day by day, as it always was.
    assert DEFAULT_EVENT_WINDOW.max_age.total_seconds() < MAX_TICKED_GAP_DAYS * DAY
    year_later = run([usage("now", "a", T0), usage("later", "a", T0 + timedelta(days=365))])
    assert year_later.ticked_until is not None
    assert year_later.ticked_until > (T0 + timedelta(days=364)).timestamp()
