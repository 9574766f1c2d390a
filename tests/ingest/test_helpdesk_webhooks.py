"""Help-desk webhooks against a real Kafka broker and PostgreSQL."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client import REGISTRY

from services.ingest.app import create_app
from shared.events import EventType, TicketPayload, TicketStatus
from shared.settings import Settings
from shared.topics import Topics
from tests.ingest.test_helpdesk_translation import INTERCOM_CREATED, ZENDESK_CREATED
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic, wait_for_events

ZENDESK_SECRET = "zd-signing-secret"
INTERCOM_SECRET = "ic-client-secret"
GENERIC_SECRET = "generic-secret"
MAPPINGS = '{"organization:360012345": "acct-acme", "email_domain:globex.io": "acct-globex"}'


@pytest.fixture
def settings(infra: Infra) -> Settings:
    return infra.fresh_settings(zendesk_webhook_secret=ZENDESK_SECRET,
                                intercom_webhook_secret=INTERCOM_SECRET,
                                tickets_webhook_secret=GENERIC_SECRET,
                                ticket_account_mappings=MAPPINGS)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as http:
        yield http


def zendesk_headers(body: bytes, secret: str = ZENDESK_SECRET,
                    at: datetime | None = None) -> dict[str, str]:
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    signature = base64.b64encode(
        hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()).decode()
    return {"Content-Type": "application/json", "X-Zendesk-Webhook-Signature": signature,
            "X-Zendesk-Webhook-Signature-Timestamp": stamp}


def generic_headers(body: bytes, secret: str = GENERIC_SECRET, at: datetime | None = None) -> dict[str, str]:
    stamp = str(int((at or datetime.now(UTC)).timestamp()))
    signature = "sha256=" + hmac.new(secret.encode(), stamp.encode() + b"." + body,
                                     hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Churnwatch-Signature": signature,
            "X-Churnwatch-Signature-Timestamp": stamp}


def intercom_headers(body: bytes, secret: str = INTERCOM_SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json",
            "X-Hub-Signature": "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def zendesk_body(event_id: str, organization_id: str | None) -> bytes:
    body: dict[str, Any] = copy.deepcopy(ZENDESK_CREATED)
    body["id"] = event_id
    body["detail"]["organization_id"] = organization_id
    return orjson.dumps(body)


def unmapped(source: str) -> float:
    return REGISTRY.get_sample_value("churnwatch_ingest_unmapped_tickets_total", {"source": source}) or 0.0


async def test_zendesk_ticket_is_mapped_by_organization(settings: Settings,
                                                        client: httpx.AsyncClient) -> None:
    body = zendesk_body("zd-evt-1", "360012345")
    response = await client.post("/v1/webhooks/zendesk", content=body, headers=zendesk_headers(body))
    assert response.status_code == 200, response.text

    # Zendesk retries a delivery it is unsure of: one event downstream.
    retry = await client.post("/v1/webhooks/zendesk", content=body, headers=zendesk_headers(body))
    assert retry.status_code == 200, retry.text

    events = await read_topic(settings, Topics.from_settings(settings).tickets)
    assert [e.event_id for e in events] == ["zendesk:zd-evt-1"]
    event = events[0]
    assert event.type is EventType.TICKET
    assert event.account_id == "acct-acme"
    assert event.source == "zendesk"
    payload = event.payload_as(TicketPayload)
    assert (payload.ticket_id, payload.status, payload.organization_id) == ("35436", TicketStatus.NEW,
                                                                            "360012345")


async def test_unmapped_ticket_is_published_and_counted(settings: Settings,
                                                        client: httpx.AsyncClient) -> None:
    before = unmapped("zendesk")
    body = zendesk_body("zd-evt-2", "999")
    response = await client.post("/v1/webhooks/zendesk", content=body, headers=zendesk_headers(body))
    assert response.status_code == 200, response.text
    events = await wait_for_events(settings, Topics.from_settings(settings).tickets, 1)
    assert [(e.event_id, e.account_id) for e in events] == [("zendesk:zd-evt-2", None)]
    assert unmapped("zendesk") == before + 1
    assert 'churnwatch_ingest_unmapped_tickets_total{source="zendesk"}' in (await client.get("/metrics")).text


async def test_bad_signatures_publish_nothing(settings: Settings, client: httpx.AsyncClient) -> None:
    body = zendesk_body("zd-evt-3", "360012345")
    wrong = await client.post("/v1/webhooks/zendesk", content=body,
                              headers=zendesk_headers(body, secret="not-the-secret"))
    assert wrong.status_code == 401
    assert wrong.json()["code"] == "invalid_signature"
    assert "X-Zendesk-Webhook-Signature" in wrong.json()["message"]

    stale = await client.post("/v1/webhooks/zendesk", content=body,
                              headers=zendesk_headers(body, at=datetime.now(UTC) - timedelta(minutes=10)))
    assert stale.status_code == 401
    assert stale.json()["code"] == "stale_signature"

    tampered = body.replace(b"CSV export broken", b"All good")
    forged = await client.post("/v1/webhooks/zendesk", content=tampered, headers=zendesk_headers(body))
    assert forged.status_code == 401

    missing = await client.post("/v1/webhooks/zendesk", content=body)
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_signature"

    assert await read_topic(settings, Topics.from_settings(settings).tickets) == []


async def test_intercom_and_generic_webhooks(settings: Settings, client: httpx.AsyncClient) -> None:
    intercom_body = orjson.dumps(INTERCOM_CREATED)
    signature = "sha1=" + hmac.new(INTERCOM_SECRET.encode(), intercom_body, hashlib.sha1).hexdigest()
    response = await client.post("/v1/webhooks/intercom", content=intercom_body,
                                 headers={"X-Hub-Signature": signature})
    assert response.status_code == 200, response.text

    ping = orjson.dumps({"type": "notification_event", "id": "notif_ping", "topic": "ping",
                         "data": {"item": {"type": "ping", "message": "hello"}}})
    ping_sig = "sha1=" + hmac.new(INTERCOM_SECRET.encode(), ping, hashlib.sha1).hexdigest()
    pinged = await client.post("/v1/webhooks/intercom", content=ping, headers={"X-Hub-Signature": ping_sig})
    assert pinged.status_code == 200 and "ignored" in pinged.json()

    generic = orjson.dumps({"ticket_id": "fd-7", "status": "open", "priority": "urgent",
                            "updated_at": "2026-11-20T10:00:00Z", "requester_email": "ann@unknown.example"})
    accepted = await client.post("/v1/webhooks/tickets", content=generic, headers=generic_headers(generic))
    assert accepted.status_code == 200, accepted.text

    invalid = orjson.dumps({"ticket_id": "fd-8", "status": "exploded", "updated_at": "2026-11-20T10:00:00Z"})
    refused = await client.post("/v1/webhooks/tickets", content=invalid, headers=generic_headers(invalid))
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "status"

    tickets_topic = Topics.from_settings(settings).tickets
    events = {e.event_id: e for e in await wait_for_events(settings, tickets_topic, 2)}
    assert set(events) == {"intercom:notif_4e3504a3-ba3f-46dc-ab48-8e4d5bdfdf4e",
                           "ticket:fd-7:2026-11-20T10:00:00+00:00:open:urgent"}
    # Intercom's company is unmapped, so the requester's email domain decides.
    assert events["intercom:notif_4e3504a3-ba3f-46dc-ab48-8e4d5bdfdf4e"].account_id == "acct-globex"
    assert events["ticket:fd-7:2026-11-20T10:00:00+00:00:open:urgent"].account_id is None


async def test_unconfigured_webhook_is_off(infra: Infra) -> None:
    async with serving(create_app(infra.fresh_settings())) as http:
        response = await http.post("/v1/webhooks/zendesk", content=b"{}")
    assert response.status_code == 404
    assert response.json()["code"] == "webhook_not_configured"
    assert "CHURNWATCH_ZENDESK_WEBHOOK_SECRET" in response.json()["message"]


async def test_intercom_and_generic_bad_signatures_publish_nothing(settings: Settings,
                                                                    client: httpx.AsyncClient) -> None:
    intercom_body = orjson.dumps(INTERCOM_CREATED)
    for headers, body, code in [
        (intercom_headers(intercom_body, secret="wrong"), intercom_body, "invalid_signature"),
        (intercom_headers(intercom_body), intercom_body.replace(b"Billing", b"Nothing"),
         "invalid_signature"),
        ({}, intercom_body, "missing_signature"),
    ]:
        response = await client.post("/v1/webhooks/intercom", content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == code
        assert "X-Hub-Signature" in response.json()["message"]

    generic = orjson.dumps({"ticket_id": "fd-9", "account_id": "acme", "status": "open",
                            "updated_at": "2026-11-20T10:00:00Z"})
    for headers, body, code in [
        (generic_headers(generic, secret="wrong"), generic, "invalid_signature"),
        (generic_headers(generic), generic.replace(b"fd-9", b"fd-0"), "invalid_signature"),
        (generic_headers(generic, at=datetime.now(UTC) - timedelta(minutes=10)), generic,
         "stale_signature"),
    ]:
        response = await client.post("/v1/webhooks/tickets", content=body, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["code"] == code
        assert "X-Churnwatch-Signature" in response.json()["message"]
    assert await read_topic(settings, Topics.from_settings(settings).tickets) == []


async def test_zendesk_events_map_by_an_explicit_requester_mapping(infra: Infra) -> None:
    """Zendesk's events name the requester by id only: an explicit id mapping decides."""
    settings = infra.fresh_settings(
        zendesk_webhook_secret=ZENDESK_SECRET,
        ticket_account_mappings='{"zendesk_requester:900002": "acct-initech"}')
    async with serving(create_app(settings)) as http:
        for event_id, event_type in [("zd-r1", "ticket.created"), ("zd-r2", "ticket.comment_added"),
                                     ("zd-r3", "ticket.priority_changed")]:
            body = copy.deepcopy(ZENDESK_CREATED)
            body["id"], body["type"] = event_id, f"zen:event-type:{event_type}"
            body["detail"]["organization_id"] = None
            if event_type == "ticket.comment_added":
                body["event"] = {"comment": {"id": "1", "body": "We are moving to Competitor X",
                                             "is_public": True}}
            if event_type == "ticket.priority_changed":
                body["detail"]["priority"] = "URGENT"
                body["event"] = {"current": "URGENT", "previous": "HIGH"}
            raw = orjson.dumps(body)
            response = await http.post("/v1/webhooks/zendesk", content=raw, headers=zendesk_headers(raw))
            assert response.status_code == 200, response.text
    events = {e.event_id: e for e in await read_topic(settings, Topics.from_settings(settings).tickets)}
    assert {k: e.account_id for k, e in events.items()} == {
        "zendesk:zd-r1": "acct-initech", "zendesk:zd-r2": "acct-initech", "zendesk:zd-r3": "acct-initech"}
    assert events["zendesk:zd-r2"].payload["comment"] == "We are moving to Competitor X"
    assert events["zendesk:zd-r3"].payload["priority"] == "urgent"
    assert events["zendesk:zd-r1"].payload["requester_id"] == "900002"
