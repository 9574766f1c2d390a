"""Scoring on a real broker and database: scores, outputs, idempotency, dead letters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from services.scoring.app import create_app
from shared.events import EventType
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.scoring.events import T0, envelope, group, nps, usage
from tests.support.apps import serving
from tests.support.kafka import read_topic


@pytest.fixture
async def scoring(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, EventPublisher]]:
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    async with serving(create_app(settings)) as client:
        yield client, publisher
    await publisher.stop()


async def health_when(client: httpx.AsyncClient, account: str, predicate, timeout: float = 20.0) -> dict:  # type: ignore[no-untyped-def, type-arg]
    deadline = asyncio.get_running_loop().time() + timeout
    body: dict = {}  # type: ignore[type-arg]
    while asyncio.get_running_loop().time() < deadline:
        response = await client.get(f"/v1/accounts/{account}/health")
        if response.status_code == 200:
            body = response.json()
            if predicate(body):
                return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"health for {account} never matched: {body}")


async def test_scores_outputs_and_duplicates(
    settings: Settings, scoring: tuple[httpx.AsyncClient, EventPublisher]
) -> None:
    client, publisher = scoring
    topics = Topics.from_settings(settings)
    assert (await client.get("/v1/accounts/acme/health")).status_code == 404

    product = [group("g1", "acme", "Acme Corp"), usage("u1", "acme", T0),
               usage("u2", "acme", T0 + timedelta(hours=1)), usage("anon", None, T0)]
    survey = [nps("n1", "acme", "r1", 2, T0 + timedelta(days=1), comment="Competitor X is cheaper")]
    inputs = product + survey
    # One topic after the other: across topics Kafka gives no order (see the consumer).
    await publisher.publish(product)
    await health_when(client, "acme", lambda h: h["events_applied"] == 3)
    await publisher.publish(survey)
    health = await health_when(client, "acme", lambda h: h["events_applied"] == 4)
    assert health["account_name"] == "Acme Corp"
    # Recency 100 (weight 25) and NPS 2 -> 10 (weight 25); usage and tickets left out.
    assert health["score"] == 55.0
    assert health["band"] == "yellow"
    assert health["factors"][0]["detail"] == "latest NPS response 2 (detractor)"

    signals = await read_topic(settings, topics.risk_signals)
    assert [s.payload["signal_type"] for s in signals] == ["detractor_response"]
    assert signals[0].payload["dedupe_key"] == "detractor:acme:r1"
    assert signals[0].payload["evidence"]["comment"] == "Competitor X is cheaper"
    scores = await read_topic(settings, topics.health_scores)
    assert [s.event_id for s in scores] == ["health:u1", "health:n1"]
    assert scores[-1].payload["previous_score"] == 100.0

    # The same events again: nothing changes, nothing new is published.
    await publisher.publish(inputs)
    await publisher.publish([usage("u3", "acme", T0 + timedelta(hours=2))])  # a marker after them
    after = await health_when(client, "acme", lambda h: h["events_applied"] == 5)
    assert after["score"] == health["score"]
    assert len(await read_topic(settings, topics.risk_signals)) == 1
    assert len(await read_topic(settings, topics.health_scores)) == 2
    metrics = (await client.get("/metrics")).text
    assert 'outcome="duplicate"' in metrics
    assert "churnwatch_scoring_unattributed_events_total" in metrics


async def test_entering_red_raises_one_signal_and_bad_payloads_are_dead_lettered(
    settings: Settings, scoring: tuple[httpx.AsyncClient, EventPublisher]
) -> None:
    client, publisher = scoring
    topics = Topics.from_settings(settings)
    broken = envelope(EventType.SURVEY_RESPONSE, "broken", "globex", T0,
                      {"survey_type": "nps", "score": "very"})
    await publisher.publish([group("g", "globex", "Globex"), broken,
                             nps("n1", "globex", "r1", 0, T0), nps("n2", "globex", "r2", 1, T0)])
    health = await health_when(client, "globex", lambda h: h["events_applied"] == 3)
    assert health["band"] == "red"
    signals = [s.payload for s in await read_topic(settings, topics.risk_signals)]
    assert sorted(s["signal_type"] for s in signals) == [
        "detractor_response", "detractor_response", "entered_red"]
    [dead] = await read_topic(settings, topics.dead_letter)
    assert dead.event_id == "broken"
    readiness = await client.get("/readyz")
    assert readiness.json() == {"status": "ready", "checks": {"database": True, "kafka": True}}
