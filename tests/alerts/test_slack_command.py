"""`/churnwatch <account>`: alerts answers from its own alert book and from scoring's health
API, read with the service token. Scoring runs as its own process over the same broker and
database, fed real events; its signals open the alert the answer names."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from deploy.local.processes import free_port
from services.alerts.routing.config import parse_routing
from shared.events import utcnow
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import ensure_topics
from tests.alerts.clock import ManualClock
from tests.alerts.receivers import SlackReceiver
from tests.alerts.support import Running, running
from tests.alerts.test_slack_app import SIGNING_SECRET, settings_for, signed
from tests.scoring.events import group, nps
from tests.support.infra import API_AUTH, Infra
from tests.support.processes import ServiceProcess
from tests.support.waiting import eventually

CONFIG = parse_routing({"defaults": {"channels": ["slack"], "timezone": "UTC"}})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(utcnow())


@pytest.fixture
async def stack(
    infra: Infra, slack: SlackReceiver, clock: ManualClock
) -> AsyncIterator[tuple[Running, str, Settings]]:
    port = free_port()
    settings = settings_for(infra, slack, alerts_scoring_url=f"http://127.0.0.1:{port}")
    scoring = ServiceProcess("scoring", settings, port, Path(tempfile.mkdtemp(prefix="churnwatch-slack-")))
    await asyncio.to_thread(scoring.start)
    try:
        async with running(settings, CONFIG, clock) as service:
            yield service, scoring.base_url, settings
    finally:
        await asyncio.to_thread(scoring.stop)


def command(text: str) -> bytes:
    return urlencode({
        "token": "deprecated-verification-token", "team_id": "T000", "channel_id": "C0CS",
        "user_id": "U0JANE", "user_name": "jane", "command": "/churnwatch", "text": text,
        "response_url": "https://hooks.slack.test/commands/T000/1/abc", "trigger_id": "1.2.3",
    }).encode()


async def ask(service: Running, clock: ManualClock, text: str) -> httpx.Response:
    body = command(text)
    return await service.client.post(
        "/v1/slack/commands", content=body, headers=signed(body, int(clock.now().timestamp()))
    )


async def test_the_command_answers_with_health_band_reasons_and_the_open_alert(
    stack: tuple[Running, str, Settings], clock: ManualClock
) -> None:
    service, scoring_url, settings = stack
    start = utcnow() - timedelta(hours=2)
    publisher = EventPublisher(settings, "test")
    await ensure_topics(settings)
    await publisher.start()
    try:
        await publisher.publish([
            group("g-acme", "acme", "Acme Corp", start, csm_slack_channel="#cs-acme", mrr=4200),
            nps("n-acme", "acme", "r-acme", 0, start + timedelta(minutes=5), comment="Too slow"),
        ])
    finally:
        await publisher.stop()

    async def health() -> dict[str, object] | None:
        async with httpx.AsyncClient(base_url=scoring_url, headers=API_AUTH) as client:
            answer = await client.get("/v1/accounts/acme/health")
        return answer.json() if answer.status_code == 200 else None

    await eventually(health, "scoring to score acme", within=60.0)
    await service.wait("acme", lambda a: len(a) == 1, timeout=60.0)
    scored = await health()
    assert scored is not None

    response = await ask(service, clock, "acme corp")  # by name, case aside
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["response_type"] == "ephemeral"  # only the caller sees it
    [alert] = await service.alerts("acme")
    factors = [str(f) for f in scored["top_factors"]][:3]  # type: ignore[index]
    reasons = [
        f"• {r['severity'].capitalize()} · {r['signal_type'].replace('_', ' ')}: {r['summary']}"
        for r in alert["reasons"]
        if r["state"] == "active"
    ][:3]
    expected = [
        "*Acme Corp* (`acme`)",
        f"Health *{float(scored['score']):.0f}*, band *{scored['band']}*",  # type: ignore[arg-type]
        *(["Top reasons:\n" + "\n".join(f"• {f}" for f in factors)] if factors else []),
        f"Open alert #{alert['id']} ({alert['state']}, {alert['severity']}): {alert['summary']}",
        *reasons,
    ]
    assert factors and reasons  # real engine output: an NPS 0 pulls the score down and raises signals
    assert answer["text"] == "\n".join(expected)
    assert answer["blocks"][0]["text"]["text"] == answer["text"]

    missing = (await ask(service, clock, "nobody-inc")).json()
    assert missing["response_type"] == "ephemeral"
    assert missing["text"].startswith("No account called `nobody-inc` is known to Churnwatch.")
    usage = (await ask(service, clock, "")).json()
    assert usage["text"] == "Usage: `/churnwatch <account id or name>`, e.g. `/churnwatch acme`."


async def test_the_command_is_refused_unsigned(
    stack: tuple[Running, str, Settings], clock: ManualClock
) -> None:
    service, _, _ = stack
    body = command("acme")
    now = int(clock.now().timestamp())
    wrong = await service.client.post("/v1/slack/commands", content=body,
                                      headers=signed(body, now, "x" + SIGNING_SECRET))
    assert (wrong.status_code, wrong.json()["code"]) == (401, "bad_signature")
