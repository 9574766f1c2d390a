"""What an operator runs: `churnwatch write-keys`, `churnwatch ticket-mappings`, and the
ticket-mapping admin API, against the real database; their effect seen through ingest."""

from __future__ import annotations

import asyncio
import copy
import re
from datetime import UTC, datetime

import orjson
import pytest

from services.ingest.app import create_app
from shared import cli
from shared.settings import Settings
from shared.topics import Topics
from tests.ingest.test_helpdesk_translation import ZENDESK_CREATED
from tests.ingest.test_helpdesk_webhooks import zendesk_headers
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic

ADMIN = {"Authorization": "Bearer admin-token"}


async def run_cli(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """`churnwatch <argv>` as an operator would run it, on the test's database."""
    def run() -> int:
        module = __import__(cli.COMMANDS[argv[0]][0], fromlist=["main"])
        code: int = module.main(list(argv[1:]), settings=settings)
        return code

    capsys.readouterr()  # only what the command prints, not the services' logs before it
    code = await asyncio.to_thread(run)
    out, err = capsys.readouterr()
    return code, out, err


def test_the_commands_are_registered(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert "write-keys" in usage and "ticket-mappings" in usage


async def test_write_keys_create_list_revoke(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = await run_cli(settings, capsys, "write-keys", "create", "--source", "billing-backend")
    assert code == 0, err
    key = re.search(r"^key:\s+(\S+)$", out, re.MULTILINE)
    key_id = re.search(r"^key_id:\s+(\S+)$", out, re.MULTILINE)
    assert key and key_id, out
    assert "shown only now" in err

    async with serving(create_app(settings)) as client:
        track = {"writeKey": key[1], "userId": "u", "event": "Invoice Sent", "messageId": "cli-1"}
        assert (await client.post("/v1/track", json=track)).status_code == 200

        code, out, _ = await run_cli(settings, capsys, "write-keys", "list")
        assert code == 0
        [row] = [line for line in out.splitlines() if key_id[1] in line]
        assert "billing-backend" in row and key[1] not in out  # listed without the secret

        code, out, _ = await run_cli(settings, capsys, "write-keys", "revoke", key_id[1])
        assert code == 0 and f"revoked {key_id[1]}" in out
        # The running instance refuses it from the next request on.
        refused = await client.post("/v1/track", json={**track, "messageId": "cli-2"})
        assert refused.status_code == 401

    code, _, err = await run_cli(settings, capsys, "write-keys", "revoke", "wk_unknown")
    assert code == 1 and "no write key" in err
    code, _, err = await run_cli(settings, capsys, "write-keys", "create", "--source", " ")
    assert code == 2 and "--source" in err
    usage = await run_cli(settings, capsys, "write-keys", "create", "--source", "x" * 101)
    assert usage[0] == 2
    usage_events = await read_topic(settings, Topics.from_settings(settings).usage)
    assert [(e.event_id, e.source) for e in usage_events] == [("cli-1", "billing-backend")]


async def test_ticket_mappings_cli_and_admin_api(infra: Infra, capsys: pytest.CaptureFixture[str]) -> None:
    settings = infra.fresh_settings(admin_token="admin-token", zendesk_webhook_secret="zd-secret")
    code, _, err = await run_cli(settings, capsys, "ticket-mappings", "set", "organization:777",
                                 "acct-umbrella")
    assert code == 0, err
    code, _, err = await run_cli(settings, capsys, "ticket-mappings", "set", "company:1", "acct-x")
    assert code == 2 and "must start with one of" in err

    async with serving(create_app(settings)) as client:
        put = await client.put("/v1/admin/ticket-mappings/email_domain/Globex.IO", headers=ADMIN,
                               json={"account_id": "acct-globex"})
        assert put.status_code == 200, put.text
        assert put.json() == {"kind": "email_domain", "key": "globex.io", "account_id": "acct-globex"}
        put = await client.put("/v1/admin/ticket-mappings/zendesk_requester/900002", headers=ADMIN,
                               json={"account_id": "acct-initech"})
        assert put.status_code == 200, put.text
        bad = await client.put("/v1/admin/ticket-mappings/company/1", headers=ADMIN, json={"account_id": "a"})
        assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "kind"
        empty = await client.put("/v1/admin/ticket-mappings/organization/1", headers=ADMIN,
                                 json={"account_id": ""})
        assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "account_id"
        unauthorized = await client.get("/v1/admin/ticket-mappings")
        assert unauthorized.status_code == 401

        listed = (await client.get("/v1/admin/ticket-mappings", headers=ADMIN)).json()["ticket_mappings"]
        assert listed == [
            {"kind": "email_domain", "key": "globex.io", "account_id": "acct-globex"},
            {"kind": "organization", "key": "777", "account_id": "acct-umbrella"},
            {"kind": "zendesk_requester", "key": "900002", "account_id": "acct-initech"},
        ]

        async def zendesk(event_id: str, organization_id: str | None) -> None:
            body = copy.deepcopy(ZENDESK_CREATED)
            body["id"] = event_id
            body["detail"]["organization_id"] = organization_id
            body["detail"]["updated_at"] = datetime.now(UTC).isoformat()
            raw = orjson.dumps(body)
            response = await client.post("/v1/webhooks/zendesk", content=raw,
                                         headers=zendesk_headers(raw, secret="zd-secret"))
            assert response.status_code == 200, response.text

        await zendesk("by-org", "777")  # organization first
        await zendesk("by-requester", None)  # then the requester's Zendesk id
        deleted = await client.delete("/v1/admin/ticket-mappings/zendesk_requester/900002", headers=ADMIN)
        assert deleted.status_code == 200
        assert (await client.delete("/v1/admin/ticket-mappings/zendesk_requester/900002",
                                    headers=ADMIN)).status_code == 404
        await zendesk("unmapped", None)  # the change applies to the next ticket

    code, out, _ = await run_cli(settings, capsys, "ticket-mappings", "list")
    assert out.splitlines() == ["email_domain:globex.io\tacct-globex", "organization:777\tacct-umbrella"]
    code, out, _ = await run_cli(settings, capsys, "ticket-mappings", "delete", "organization:777")
    assert code == 0 and "deleted organization:777" in out
    tickets = {e.event_id: e.account_id
               for e in await read_topic(settings, Topics.from_settings(settings).tickets)}
    assert tickets == {"zendesk:by-org": "acct-umbrella", "zendesk:by-requester": "acct-initech",
                       "zendesk:unmapped": None}
