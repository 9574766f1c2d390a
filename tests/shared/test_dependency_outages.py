"""Every service answers a PostgreSQL outage with 503, `Retry-After` and the documented JSON
body, on reads and writes, through the shared app shell (no route handles it itself).

Each service's own path to PostgreSQL goes through a TCP proxy that the test cuts (open
connections reset, new ones refused); the server, and every other test, carry on.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from services.alerts.app import create_app as alerts_app
from services.scoring.app import create_app as scoring_app
from services.surveys.app import create_app as surveys_app
from shared.settings import Settings
from tests.support.apps import serving
from tests.support.infra import API_AUTH, Infra
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import eventually

KEY = "test-write-key"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()}
ALERTS_TOKEN = "outage-alerts-token"
BEARER = {"Authorization": f"Bearer {ALERTS_TOKEN}"}
SURVEY_RESPONSE = {"response_id": "r-outage", "account_id": "acme", "user_id": "u1",
                   "survey_type": "nps", "score": 3, "submitted_at": "2026-11-20T10:00:00Z"}


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    options: dict[str, Any]

    async def send(self, http: httpx.AsyncClient) -> httpx.Response:
        return await http.request(self.method, self.path, **self.options)


@dataclass(frozen=True)
class Case:
    app: Callable[[Settings], FastAPI]
    calls: list[Call]  # reads and writes; each answers < 500 while the database is there


CASES = {
    "scoring": Case(scoring_app, [
        Call("GET", "/v1/accounts/acme/health", {"headers": API_AUTH}),
        Call("GET", "/v1/portfolio/summary", {"headers": API_AUTH}),
    ]),
    "alerts": Case(alerts_app, [
        Call("GET", "/v1/accounts/acme/alerts", {"headers": BEARER}),
        Call("POST", "/v1/alerts/1/acknowledge", {"headers": BEARER, "json": {"actor": "csm"}}),
    ]),
    "surveys": Case(lambda s: surveys_app(s, invitation_loops=False), [
        Call("POST", "/v1/responses", {"headers": BASIC, "json": SURVEY_RESPONSE}),
        Call("GET", "/v1/accounts/acme/nps", {"headers": API_AUTH}),
    ]),
}


async def database_up(http: httpx.AsyncClient, service: str) -> float | None:
    page = (await http.get("/metrics")).text
    return next((sample.value for family in text_string_to_metric_families(page) for sample in family.samples
                 if sample.name == "churnwatch_dependency_up"
                 and sample.labels == {"service": service, "dependency": "database"}), None)


@pytest.mark.parametrize("service", list(CASES))
async def test_a_database_outage_answers_503_with_retry_after(infra: Infra, service: str) -> None:
    case = CASES[service]
    direct = infra.fresh_settings(alerts_api_token=ALERTS_TOKEN)
    url = make_url(direct.database_url)
    assert url.host is not None and url.port is not None
    async with tcp_proxy(url.host, url.port) as proxy:
        settings = direct.model_copy(update={"database_url": url.set(port=proxy.port).render_as_string(
            hide_password=False)})
        async with serving(case.app(settings)) as http:
            async def ready() -> bool:  # consumers joined: nothing left to start while cut
                return (await http.get("/readyz")).status_code == 200
            await eventually(ready, f"{service} ready", within=60.0)
            for call in case.calls:
                before = await call.send(http)
                assert before.status_code < 500, (call.path, before.text)

            await proxy.cut()
            for call in case.calls:
                response = await call.send(http)
                assert response.status_code == 503, (call.path, response.text)
                assert response.headers["content-type"] == "application/json"
                body = response.json()
                assert body["code"] == "database_unavailable", (call.path, body)
                assert "retry" in body["message"]
                assert response.headers["Retry-After"] == "5"
            ready_while_cut = await http.get("/readyz")
            assert ready_while_cut.status_code == 503
            assert ready_while_cut.json()["checks"]["database"] is False
            # What ChurnwatchDatabaseUnavailable reads, set by the scrape itself.
            assert await database_up(http, service) == 0.0

            await proxy.open()  # back: each pool reconnects by itself

            async def recovered() -> bool:
                statuses = [(await call.send(http)).status_code for call in case.calls]
                return all(status < 500 for status in statuses)
            await eventually(recovered, f"{service} answers again once the database is back")
            assert await database_up(http, service) == 1.0
