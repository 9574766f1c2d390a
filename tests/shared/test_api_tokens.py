"""Every read API behind an API token with the right scope (issue 14): `churnwatch tokens`,
401 without or with an unknown or revoked token, 403 with the wrong scope, the ops endpoints
and the pre-token settings still working. Real services, real PostgreSQL and Kafka."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from services.alerts.app import create_app as alerts_app
from services.scoring.app import create_app as scoring_app
from services.surveys.app import create_app as surveys_app
from shared import tokens_cli
from shared.api_tokens import Scope, issue_token, list_tokens, revoke_token
from shared.db import create_engine
from shared.settings import Settings
from tests.ingest.test_operator_tools import run_cli
from tests.support.apps import serving
from tests.support.infra import API_AUTH, Infra
from tests.support.waiting import eventually


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def ready(client: httpx.AsyncClient) -> None:
    async def answers() -> bool:
        return (await client.get("/readyz")).status_code == 200
    await eventually(answers, "service ready", within=60.0)


def assert_refused(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    assert response.headers["content-type"] == "application/json"
    assert response.headers["www-authenticate"].startswith("Bearer")
    body: dict[str, str] = response.json()
    return body


async def test_tokens_cli_create_list_revoke_and_the_token_at_the_door(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await run_cli(settings, capsys, "tokens", "create", "--name", "crm-sync",
                                   "--scope", "read:health", "--scope", "read:surveys")
    assert code == 0, err
    token = re.search(r"^token:\s+(cwt_\S+)$", out, re.MULTILINE)
    token_id = re.search(r"^token_id:\s+(tok_\S+)$", out, re.MULTILINE)
    assert token and token_id, out
    assert "shown only now" in err
    with pytest.raises(SystemExit) as wrong_scope:  # argparse's usage error, before any work
        tokens_cli.main(["create", "--name", "x", "--scope", "read:all"], settings=settings)
    assert wrong_scope.value.code == 2 and "invalid choice: 'read:all'" in capsys.readouterr().err

    async with serving(scoring_app(settings)) as client:
        await ready(client)
        unknown_account = await client.get("/v1/accounts/nobody/health", headers=bearer(token[1]))
        assert (unknown_account.status_code, unknown_account.json()["code"]) == (404, "not_found")
        assert (await client.get("/v1/portfolio/summary", headers=bearer(token[1]))).status_code == 200

        code, out, _ = await run_cli(settings, capsys, "tokens", "list")
        assert code == 0
        [row] = [line for line in out.splitlines() if token_id[1] in line]
        assert "crm-sync" in row and "read:health,read:surveys" in row
        assert token[1] not in out  # never shown again
        engine = create_engine(settings)
        try:
            [info] = [t for t in await list_tokens(engine) if t.token_id == token_id[1]]
        finally:
            await engine.dispose()
        assert info.last_used_at is not None and info.revoked_at is None

        code, out, _ = await run_cli(settings, capsys, "tokens", "revoke", token_id[1])
        assert code == 0 and f"revoked {token_id[1]}" in out
        revoked = await client.get("/v1/portfolio/summary", headers=bearer(token[1]))
        assert_refused(revoked, 401, "invalid_token")
    assert (await run_cli(settings, capsys, "tokens", "revoke", "tok_nope"))[0] == 1


async def test_scoring_reads_need_read_health_and_overrides_write_overrides(infra: Infra) -> None:
    settings = infra.fresh_settings(scoring_override_token="legacy-override-token")
    engine = create_engine(settings)
    async with serving(scoring_app(settings)) as client:
        await ready(client)
        alerts_only = (await issue_token(engine, "alerts reader", frozenset({Scope.READ_ALERTS}))).token
        overrider = (await issue_token(engine, "console", frozenset({Scope.WRITE_OVERRIDES}))).token
        for path in ("/v1/accounts/acme/health", "/v1/accounts/acme/health/history", "/v1/portfolio/accounts",
                     "/v1/portfolio/summary", "/v1/portfolio/renewals"):
            body = assert_refused(await client.get(path), 401, "missing_token")
            assert "read:health" in body["message"]
            assert_refused(await client.get(path, headers=bearer("cwt_made-up")), 401, "invalid_token")
            forbidden = await client.get(path, headers=bearer(alerts_only))
            body = assert_refused(forbidden, 403, "insufficient_scope")
            assert "lacks scope read:health" in body["message"] and "read:alerts" in body["message"]
            assert 'scope="read:health"' in forbidden.headers["www-authenticate"]
            # The override token stands for overrides only, as it always did.
            assert_refused(await client.get(path, headers=bearer("legacy-override-token")), 403,
                           "insufficient_scope")
            assert (await client.get(path, headers=API_AUTH)).status_code in (200, 404)
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await client.get(path)).status_code == 200, path

        override = {"kind": "band", "band": "green", "reason": "Signed", "author": "jane@example.com",
                    "expires_at": (datetime.now(UTC) + timedelta(days=3)).isoformat()}
        url = "/v1/accounts/acme/health/override"
        assert_refused(await client.post(url, json=override), 401, "missing_token")
        assert_refused(await client.post(url, json=override, headers=bearer(alerts_only)), 403,
                       "insufficient_scope")
        # Refused at the door before the body is looked at: a stranger learns nothing of the schema.
        empty = await client.post(url, json={}, headers=bearer(alerts_only))
        assert_refused(empty, 403, "insufficient_scope")
        for allowed in (overrider, "legacy-override-token"):
            invalid = await client.post(url, json={**override, "reason": ""}, headers=bearer(allowed))
            assert invalid.status_code == 400, invalid.text
        accepted = await client.post(url, json=override, headers=bearer(overrider))
        assert accepted.status_code == 202, accepted.text
    await engine.dispose()


async def test_surveys_reads_need_read_surveys(infra: Infra) -> None:
    settings = infra.fresh_settings()
    engine = create_engine(settings)
    async with serving(surveys_app(settings, invitation_loops=False)) as client:
        await ready(client)
        issued = await issue_token(engine, "bi", frozenset({Scope.READ_SURVEYS}))
        reader = issued.token
        health_only = (await issue_token(engine, "health", frozenset({Scope.READ_HEALTH}))).token
        for path in ("/v1/accounts/acme/nps", "/v1/insights/nps", "/v1/insights/campaigns"):
            assert_refused(await client.get(path), 401, "missing_token")
            assert_refused(await client.get(path, headers=bearer(health_only)), 403, "insufficient_scope")
            assert (await client.get(path, headers=bearer(reader))).status_code == 200, path
        await revoke_token(engine, issued.info.token_id)
        assert_refused(await client.get("/v1/insights/nps", headers=bearer(reader)), 401, "invalid_token")
        # Survey tools still send responses with a write key, not an API token.
        response = {"response_id": "r1", "survey_type": "nps", "score": 9, "account_id": "acme",
                    "submitted_at": datetime.now(UTC).isoformat()}
        sent = await client.post("/v1/responses", json=response, headers=bearer("test-write-key"))
        assert sent.status_code == 200, sent.text
    await engine.dispose()


async def test_alerts_reads_need_read_alerts_and_writes_admin(infra: Infra) -> None:
    settings = infra.fresh_settings()
    engine = create_engine(settings)
    async with serving(alerts_app(settings)) as client:
        await ready(client)
        reader = (await issue_token(engine, "crm", frozenset({Scope.READ_ALERTS}))).token
        for path in ("/v1/accounts/acme/alerts", "/v1/alerts/feedback", "/v1/alerts/1",
                     "/v1/recipients/jane@example.com/preferences"):
            assert_refused(await client.get(path), 401, "missing_token")
            assert (await client.get(path, headers=bearer(reader))).status_code in (200, 404), path
        refused = await client.post("/v1/alerts/1/acknowledge", json={"actor": "x"},
                                    headers=bearer(reader))
        body = assert_refused(refused, 403, "insufficient_scope")
        assert "lacks scope admin" in body["message"]
        admin = await client.post("/v1/alerts/1/acknowledge", json={"actor": "x"}, headers=API_AUTH)
        assert (admin.status_code, admin.json()["code"]) == (404, "alert_not_found")
    await engine.dispose()
