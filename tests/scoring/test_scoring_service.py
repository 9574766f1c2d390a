"""Scoring on a real broker and database: scores, outputs, idempotency, dead letters, and the API
(health explained, history, overrides, portfolio)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from services.scoring.app import create_app
from services.scoring.overrides import override_topic
from shared.events import EventType
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.scoring.events import T0, envelope, group, nps, ticket, traits, usage
from tests.support.apps import serving
from tests.support.infra import API_AUTH
from tests.support.kafka import read_topic

TOKEN = "override-token"
Scoring = tuple[httpx.AsyncClient, EventPublisher, Settings]


@pytest.fixture
async def scoring(infra: Any) -> AsyncIterator[Scoring]:
    settings = infra.fresh_settings(scoring_override_token=TOKEN)
    await ensure_topics(settings)
    publisher = EventPublisher(settings, "test")
    async with serving(create_app(settings)) as client:
        yield client, publisher, settings
    await publisher.stop()


async def health_when(
    client: httpx.AsyncClient,
    account: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 20.0,
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    body: dict[str, Any] = {}
    while asyncio.get_running_loop().time() < deadline:
        response = await client.get(f"/v1/accounts/{account}/health", headers=API_AUTH)
        if response.status_code == 200:
            body = response.json()
            if predicate(body):
                return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"health for {account} never matched: {body}")


async def test_scores_outputs_and_duplicates(scoring: Scoring) -> None:
    client, publisher, settings = scoring
    topics = Topics.from_settings(settings)
    assert (await client.get("/v1/accounts/acme/health", headers=API_AUTH)).status_code == 404

    product = [
        group("g1", "acme", "Acme Corp"),
        usage("u1", "acme", T0),
        usage("u2", "acme", T0 + timedelta(hours=1)),
        usage("anon", None, T0),
    ]
    survey = [
        nps("n1", "acme", "r1", 2, T0 + timedelta(days=1), comment="Moving to Gainsight, it is cheaper")
    ]
    await publisher.publish(product)
    first = await health_when(client, "acme", lambda h: h["events_applied"] == 3)
    # Only recency has data (a day of usage is too little to judge adoption or breadth).
    assert first["score"] == 100.0 and first["band"] == "green" and first["segment"] == "standard"
    await publisher.publish(survey)
    health = await health_when(client, "acme", lambda h: h["events_applied"] == 4)
    assert health["account_name"] == "Acme Corp"
    # + NPS 2 -> 10 (weight 15): (20 * 100 + 15 * 10) / 35 = 61.4.
    assert health["score"] == 61.4 and health["band"] == "yellow"
    assert health["factors"][0]["detail"] == "latest NPS response 2 (detractor)"
    assert health["top_factors"][0] == "latest NPS response 2 (detractor)"
    assert "no support tickets seen yet: left out" in [f["detail"] for f in health["factors"]]

    signals = {s.payload["dedupe_key"]: s.payload for s in await read_topic(settings, topics.risk_signals)}
    # The band and score drops are this response's doing: told within its signals, not apart.
    assert set(signals) == {"detractor:acme:r1", "competitor:acme:survey:r1:gainsight"}
    detractor = signals["detractor:acme:r1"]
    assert detractor["evidence"]["comment"] == "Moving to Gainsight, it is cheaper"
    assert (detractor["segment"], detractor["score"], detractor["previous_score"]) == (
        "standard",
        61.4,
        100.0,
    )
    assert detractor["evidence"]["also"] == ["band_dropped", "score_drop"]
    assert (detractor["band"], detractor["previous_band"]) == ("yellow", "green")
    scores = await read_topic(settings, topics.health_scores)
    # The first score is u1's or u2's: the group call and u1 share an instant, arrive on different
    # topics in either order, and usage re-scores at most once a minute of event time.
    assert [s.event_id for s in scores][1:] == ["health:n1"] and len(scores) == 2
    assert scores[-1].payload["previous_score"] == 100.0 and scores[-1].payload["segment"] == "standard"

    # The same events again: nothing changes, nothing new is published.
    await publisher.publish(product + survey)
    await publisher.publish([usage("u3", "acme", T0 + timedelta(days=1, hours=2))])  # a marker after them
    after = await health_when(client, "acme", lambda h: h["events_applied"] == 5)
    assert after["score"] == health["score"]
    assert len(await read_topic(settings, topics.risk_signals)) == 2
    assert len(await read_topic(settings, topics.health_scores)) == 2
    metrics = (await client.get("/metrics")).text
    assert 'outcome="duplicate"' in metrics
    assert "churnwatch_scoring_unattributed_events_total" in metrics

    history = (await client.get("/v1/accounts/acme/health/history", headers=API_AUTH)).json()
    assert history["changes"][0]["event_id"] == "n1" and len(history["changes"]) == 2
    change = history["changes"][0]
    assert (change["previous_score"], change["score"], change["previous_band"], change["band"]) == (
        100.0,
        61.4,
        "green",
        "yellow",
    )
    # NPS 10 points at 15/35 of the weight: 4.29 points of the score, where it had none.
    assert {"measure": "nps", "before": None, "after": 4.29} in change["contributions"]


async def test_entering_red_raises_one_signal_and_bad_payloads_are_dead_lettered(scoring: Scoring) -> None:
    client, publisher, settings = scoring
    topics = Topics.from_settings(settings)
    broken = envelope(
        EventType.SURVEY_RESPONSE, "broken", "globex", T0, {"survey_type": "nps", "score": "very"}
    )
    await publisher.publish(
        [
            group("g", "globex", "Globex"),
            broken,
            nps("n1", "globex", "r1", 0, T0, user_id="u1"),
            nps("n2", "globex", "r2", 1, T0, user_id="u2"),
        ]
    )
    health = await health_when(client, "globex", lambda h: h["events_applied"] == 3)
    assert health["band"] == "red"
    signals = [s.payload for s in await read_topic(settings, topics.risk_signals)]
    assert sorted(s["signal_type"] for s in signals) == [
        "detractor_response",
        "detractor_response",
        "entered_red",
    ]
    [dead] = await read_topic(settings, topics.dead_letter)
    assert dead.event_id == "broken"
    readiness = await client.get("/readyz")
    assert readiness.json() == {"status": "ready", "checks": {"database": True, "kafka": True}}


async def test_a_csm_override_is_audited_shown_beside_the_computed_score_and_lapses(scoring: Scoring) -> None:
    client, publisher, settings = scoring
    await publisher.publish([group("g", "initech", "Initech"), nps("n", "initech", "r", 0, T0)])
    await health_when(client, "initech", lambda h: h["band"] == "red")
    body = {
        "kind": "band",
        "band": "green",
        "reason": "Exec sponsor signed the renewal",
        "author": "jane@csm.example",
        "expires_at": (datetime.now(UTC) + timedelta(days=14)).isoformat(),
    }
    assert (await client.post("/v1/accounts/initech/health/override", json=body)).status_code == 401
    refused = await client.post(
        "/v1/accounts/initech/health/override",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={**body, "reason": ""},
    )
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"].endswith("reason")
    accepted = await client.post(
        "/v1/accounts/initech/health/override", headers={"Authorization": f"Bearer {TOKEN}"}, json=body
    )
    assert accepted.status_code == 202, accepted.text
    health = await health_when(client, "initech", lambda h: h["override"] is not None)
    assert (health["band"], health["computed_band"]) == ("green", "red")
    assert health["override"]["author"] == "jane@csm.example"
    assert health["override"]["reason"] == "Exec sponsor signed the renewal"
    [audit] = health["override_audit"]
    assert (audit["action"], audit["author"], audit["band"]) == ("set", "jane@csm.example", "green")
    # Recomputation does not overwrite it: a new detractor moves the computed score only.
    await publisher.publish([nps("n2", "initech", "r2", 1, T0 + timedelta(hours=2), user_id="u2")])
    health = await health_when(client, "initech", lambda h: h["events_applied"] == 3)
    assert health["band"] == "green" and health["override"] is not None
    # Event time passes the expiry (an event dated after it): the override lapses.
    later = datetime.now(UTC) + timedelta(days=15)
    await publisher.publish([usage("late-use", "initech", later)])
    health = await health_when(client, "initech", lambda h: h["override"] is None)
    assert health["band"] == health["computed_band"]
    cleared = await client.request(
        "DELETE",
        "/v1/accounts/initech/health/override",
        headers={"Authorization": f"Bearer {TOKEN}"},
        json={"author": "jane@csm.example"},
    )
    assert cleared.status_code == 404  # nothing in force any more
    overrides = await read_topic(settings, override_topic(settings.topic_prefix))
    assert [o.type for o in overrides] == [EventType.HEALTH_OVERRIDE]


async def test_portfolio_by_band_segment_renewals_and_distribution(scoring: Scoring) -> None:
    client, publisher, _ = scoring
    renewal = (T0 + timedelta(days=30)).date()
    await publisher.publish(
        [
            traits("a1", "red-co", T0, name="Red Co", renewal_date=renewal.isoformat(), mrr=500),
            nps("n1", "red-co", "r1", 0, T0),
            traits(
                "a2",
                "big-co",
                T0,
                name="Big Co",
                mrr=20_000,
                renewal_date=renewal.isoformat(),
                payment_status="current",
            ),
            usage("u2", "big-co", T0),
            nps("n2", "big-co", "r2", 10, T0),
            traits("a3", "mid-co", T0, name="Mid Co", payment_status="failed"),
            usage("u3", "mid-co", T0),
            ticket("t3", "mid-co", "T-1", "open", T0, priority="high"),
            nps("n3", "mid-co", "r3", 5, T0),
        ]
    )
    # red-co 0; mid-co (5 * 20 + 20 * 100 + 10 * 65 + 15 * 25 + 5 * 20) / 55 = 58.6;
    # big-co, enterprise by ARR: (5 * 20 + 10 * 100 + 15 * 100 + 10 * 100 + 5 * 60) / 45 = 86.7.
    for account, events in (("red-co", 2), ("big-co", 3), ("mid-co", 4)):
        await health_when(client, account, lambda h, n=events: h["events_applied"] == n)
    page = (await client.get("/v1/portfolio/accounts", params={"limit": 2}, headers=API_AUTH)).json()
    assert [a["account_id"] for a in page["accounts"]] == ["red-co", "mid-co"]  # riskiest first
    rest = (
        await client.get("/v1/portfolio/accounts", params={"limit": 2, "cursor": page["next_cursor"]},
                         headers=API_AUTH)
    ).json()
    assert [a["account_id"] for a in rest["accounts"]] == ["big-co"] and rest["next_cursor"] is None
    enterprise = (await client.get("/v1/portfolio/accounts", params={"segment": "enterprise"},
                                   headers=API_AUTH)).json()
    assert [a["account_id"] for a in enterprise["accounts"]] == ["big-co"]
    wanted = [("account_id", "big-co"), ("account_id", "red-co"), ("account_id", "x")]
    book = (await client.get("/v1/portfolio/accounts", headers=API_AUTH, params=wanted)).json()
    assert [a["account_id"] for a in book["accounts"]] == ["red-co", "big-co"]  # a CSM's book, riskiest first
    too_many = await client.get("/v1/portfolio/accounts", headers=API_AUTH,
                                params=[("account_id", f"a{i}") for i in range(101)])
    assert too_many.status_code == 400 and too_many.json()["errors"][0]["field"] == "query.account_id"
    summary = (await client.get("/v1/portfolio/summary", headers=API_AUTH)).json()
    assert summary["accounts"] == 3 and summary["by_band"]["red"] == 1
    assert sum(b["accounts"] for b in summary["score_distribution"]) == 3
    renewals = (
        await client.get("/v1/portfolio/renewals", params={"from": T0.date().isoformat(), "days": 60},
                         headers=API_AUTH)
    ).json()
    assert [a["account_id"] for a in renewals["accounts"]] == ["red-co"]  # big-co is green
    assert (await client.get("/v1/portfolio/accounts", params={"cursor": "nonsense!"},
                             headers=API_AUTH)).status_code == 400
