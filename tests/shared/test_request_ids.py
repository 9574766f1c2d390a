"""Request ids: a caller's usable `X-Request-ID` is kept, anything else replaced; the response echoes
it, and every log line written while the request runs names it (errors included)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request

from services.console.upstream import Upstream
from shared.http import create_app
from shared.request_ids import MAX_LENGTH, accepted, forwarded
from shared.settings import Settings

log = structlog.get_logger("test.request_ids")
GENERATED = re.compile(r"[0-9a-f]{32}")


def app_that_logs() -> FastAPI:
    app = create_app("test", "request ids", checks=[])

    @app.get("/work")
    async def work() -> dict[str, str]:
        log.info("work_done", step="answer")
        return {"status": "ok"}

    @app.get("/broken")
    async def broken() -> dict[str, str]:
        raise RuntimeError("a bug")

    return app


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app_that_logs(), raise_app_exceptions=False),
                             base_url="http://service")


@pytest.mark.parametrize("candidate", [
    "5f0c6a2e-6d3b-4f5e-9a1c-2b7d8e9f0a1b", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f",
    "a", "x" * MAX_LENGTH,
])
def test_short_printable_ids_are_accepted(candidate: str) -> None:
    assert accepted(candidate) == candidate


@pytest.mark.parametrize("candidate", [
    None, "", "x" * (MAX_LENGTH + 1), "has space", "line\nbreak", "tab\there", "nul\x00", "caf\u00e9",
])
def test_empty_long_spaced_control_or_non_ascii_ids_are_refused(candidate: str | None) -> None:
    assert accepted(candidate) is None


async def test_a_callers_id_is_echoed_and_names_the_requests_log_lines() -> None:
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with client() as http:
            response = await http.get("/work", headers={"X-Request-ID": "req-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-123"
    [line] = [entry for entry in logs if entry["event"] == "work_done"]
    assert line["request_id"] == "req-123"


async def test_without_a_usable_id_one_is_made_per_request() -> None:
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with client() as http:
            first = await http.get("/work")
            forged = await http.get("/work", headers={"X-Request-ID": "x" * 500})
    made = [first.headers["X-Request-ID"], forged.headers["X-Request-ID"]]
    assert all(GENERATED.fullmatch(request_id) for request_id in made), made
    assert made[0] != made[1]
    assert [entry["request_id"] for entry in logs if entry["event"] == "work_done"] == made


async def test_an_error_answer_and_its_log_line_carry_the_id() -> None:
    with structlog.testing.capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        async with client() as http:
            response = await http.get("/broken", headers={"X-Request-ID": "req-broken"})
            missing = await http.get("/nowhere", headers={"X-Request-ID": "req-404"})
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert response.headers["X-Request-ID"] == "req-broken"
    assert missing.status_code == 404
    assert missing.headers["X-Request-ID"] == "req-404"
    [line] = [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert line["request_id"] == "req-broken"


async def test_the_id_is_not_left_bound_after_the_request() -> None:
    async with client() as http:
        await http.get("/work", headers={"X-Request-ID": "req-gone"})
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_the_console_forwards_the_id_to_the_service_it_reads() -> None:
    """The console's calls to scoring and alerts carry the id of the page request that made them."""
    seen: list[str | None] = []
    scoring = create_app("scoring", "stand-in scoring", checks=[])

    @scoring.get("/v1/accounts/{account_id}/health")
    async def health(account_id: str, request: Request) -> dict[str, str]:
        seen.append(request.headers.get("X-Request-ID"))
        return {"account_id": account_id}

    upstream = Upstream(Settings(), transport=httpx.ASGITransport(app=scoring))
    console = create_app("console", "console", checks=[])

    @console.get("/accounts/{account_id}")
    async def page(account_id: str) -> dict[str, Any]:
        return await upstream.health(account_id) or {}

    transport = httpx.ASGITransport(app=console)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        answered = await http.get("/accounts/acme", headers={"X-Request-ID": "req-console-1"})
    await upstream.close()
    assert answered.json() == {"account_id": "acme"}
    assert seen == ["req-console-1"]
    # Outside any request, nothing is forwarded.
    assert forwarded() == {}
