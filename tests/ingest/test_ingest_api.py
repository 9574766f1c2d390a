"""Ingest against a real Kafka broker and PostgreSQL: acknowledged means on Kafka."""

from __future__ import annotations

import asyncio
import base64
import gzip
import time
from collections.abc import AsyncIterator

import asyncpg
import httpx
import orjson
import pytest
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from services.ingest.app import create_app
from services.ingest.helpdesk.signatures import generic_signature
from services.ingest.outage import database_unreachable
from shared.events import EventType
from shared.settings import Settings
from shared.topics import Topics
from tests.support.apps import serving
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.stuck_broker import stuck_broker
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import events_awaiting_acks, eventually

KEY = "test-write-key"


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(create_app(settings)) as http:
        yield http


async def all_events(settings: Settings) -> list[str]:
    topics = Topics.from_settings(settings)
    found = []
    for topic in (topics.usage, topics.traits, topics.tickets):
        found += [e.event_id for e in await read_topic(settings, topic)]
    return found


async def test_batch_is_attributed_and_on_kafka(settings: Settings, client: httpx.AsyncClient) -> None:
    batch = {"writeKey": KEY, "batch": [
        {"type": "group", "userId": "u1", "groupId": "acme", "messageId": "g1",
         "traits": {"name": "Acme Corp", "csm_email": "csm@example.com"}},
        {"type": "identify", "userId": "u1", "messageId": "i1", "traits": {"email": "u1@acme.test"}},
        {"type": "track", "userId": "u1", "event": "Report Built", "messageId": "t1",
         "timestamp": "2026-11-20T10:00:00Z"},
        {"type": "track", "anonymousId": "stranger", "event": "Visited", "messageId": "t2"},
    ]}
    response = await client.post("/v1/batch", json=batch)
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}

    topics = Topics.from_settings(settings)
    usage = {e.event_id: e for e in await read_topic(settings, topics.usage)}
    traits = {e.event_id: e for e in await read_topic(settings, topics.traits)}
    assert set(usage) == {"t1", "t2"}
    assert set(traits) == {"g1", "i1"}
    assert usage["t1"].account_id == "acme"
    assert usage["t1"].occurred_at.isoformat() == "2026-11-20T10:00:00+00:00"
    assert usage["t2"].account_id is None  # kept, not dropped
    assert traits["g1"].type is EventType.GROUP
    assert traits["g1"].payload["traits"]["name"] == "Acme Corp"
    assert traits["i1"].account_id == "acme"

    # The membership from the group call outlives the request.
    later = await client.post("/v1/track", headers=basic(KEY),
                              json={"userId": "u1", "event": "Later", "messageId": "t3"})
    assert later.status_code == 200
    usage_after = {e.event_id: e for e in await read_topic(settings, topics.usage)}
    assert usage_after["t3"].account_id == "acme"

    metrics = (await client.get("/metrics")).text
    assert 'churnwatch_ingest_unattributed_events_total{type="track"}' in metrics


async def test_gzip_and_bearer(settings: Settings, client: httpx.AsyncClient) -> None:
    body = gzip.compress(orjson.dumps({"writeKey": KEY, "batch": [
        {"type": "track", "userId": "u", "event": "Zipped", "messageId": "z1",
         "context": {"groupId": "acme"}}]}))
    response = await client.post("/v1/batch", content=body, headers={
        "Content-Encoding": "gzip", "Content-Type": "application/json",
        "Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200, response.text
    assert [e.event_id for e in await read_topic(settings, Topics.from_settings(settings).usage)] == ["z1"]


async def test_bearer_oauth_token_with_write_key_in_body(settings: Settings,
                                                         client: httpx.AsyncClient) -> None:
    """Segment's clients with OAuth send the access token as Bearer and the write key in the body."""
    response = await client.post("/v1/batch", headers={"Authorization": "Bearer an-oauth-access-token"},
                                 json={"writeKey": KEY, "batch": [{"type": "track", "userId": "u",
                                                                   "event": "e", "messageId": "oauth-1"}]})
    assert response.status_code == 200, response.text
    wrong = await client.post("/v1/track", headers={"Authorization": "Bearer an-oauth-access-token"},
                              json={"writeKey": "not-a-key", "userId": "u", "event": "e"})
    assert wrong.status_code == 401
    usage = await read_topic(settings, Topics.from_settings(settings).usage)
    assert [e.event_id for e in usage] == ["oauth-1"]


async def test_ticket_event(settings: Settings, client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/tickets", headers=basic(KEY), json={
        "ticket_id": "T-1", "account_id": "acme", "status": "open", "priority": "urgent",
        "subject": "Export broken", "updated_at": "2026-11-20T10:00:00Z"})
    assert response.status_code == 200, response.text
    [ticket] = await read_topic(settings, Topics.from_settings(settings).tickets)
    assert ticket.type is EventType.TICKET
    assert ticket.payload["priority"] == "urgent"


@pytest.mark.parametrize(
    ("path", "content", "headers", "status", "code", "names"),
    [
        ("/v1/batch", b'{"batch": [', {}, 400, "invalid_json", "not valid JSON"),
        ("/v1/track", orjson.dumps({"writeKey": KEY, "event": "x"}), {}, 400, "invalid_request", "userId"),
        ("/v1/track", orjson.dumps({"writeKey": KEY, "userId": "u"}), {}, 400, "invalid_request", "event"),
        ("/v1/group", orjson.dumps({"writeKey": KEY, "userId": "u", "groupId": 42}), {}, 400,
         "invalid_request", "groupId"),
        ("/v1/track", orjson.dumps({"writeKey": KEY, "userId": "u", "event": "x", "properties": [1]}),
         {}, 400, "invalid_request", "properties"),
        ("/v1/batch", orjson.dumps({"writeKey": KEY, "batch": [
            {"type": "track", "userId": "u", "event": "fine", "messageId": "never-1"},
            {"type": "track", "userId": "u"}]}), {}, 400, "invalid_request", "batch[1].event"),
        ("/v1/track", orjson.dumps({"writeKey": KEY, "userId": "u", "event": "x",
                                    "properties": {"blob": "x" * 40_000}}), {}, 400,
         "invalid_request", "limit is 32768"),
        ("/v1/batch", b"{" + b" " * 600_000 + b"}", {}, 400, "payload_too_large", "limit"),
        ("/v1/track", orjson.dumps({"writeKey": "wrong", "userId": "u", "event": "x"}), {}, 401,
         "invalid_write_key", "unknown or revoked"),
        ("/v1/track", orjson.dumps({"userId": "u", "event": "x"}), {}, 401, "missing_write_key",
         "no write key"),
        ("/v1/tickets", orjson.dumps({"writeKey": KEY, "ticket_id": "T", "status": "exploded",
                                      "updated_at": "2026-11-20T10:00:00Z"}), {}, 400,
         "invalid_request", "status"),
    ],
    ids=["malformed-json", "no-user", "no-event", "wrong-type-groupId", "wrong-type-properties",
         "bad-batch-item", "oversized-event", "oversized-body", "wrong-key", "no-key", "bad-ticket"],
)
async def test_bad_input_is_refused_and_nothing_reaches_kafka(
    settings: Settings, client: httpx.AsyncClient, path: str, content: bytes,
    headers: dict[str, str], status: int, code: str, names: str,
) -> None:
    response = await client.post(path, content=content,
                                 headers={"Content-Type": "application/json", **headers})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code
    assert names in body["message"] or any(names in e["field"] for e in body.get("errors", []))
    assert await all_events(settings) == []


async def test_kafka_unreachable_answers_503_and_accepts_nothing(infra: Infra) -> None:
    from deploy.local.processes import free_port

    settings = infra.fresh_settings(produce_timeout_seconds=2.0)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        # The same app, now pointed at a port where no broker listens.
        dead = settings.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
        async with serving(create_app(dead)) as http:
            response = await http.post("/v1/track", json={
                "writeKey": KEY, "userId": "u", "event": "x", "messageId": "lost?"})
            assert response.status_code == 503
            assert response.json()["code"] == "kafka_unavailable"
            assert response.headers["Retry-After"] == "5"
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": True, "kafka": False}
    assert await all_events(settings) == []


async def test_a_database_outage_answers_503_and_accepts_nothing(infra: Infra) -> None:
    """This instance's path to PostgreSQL is cut (open connections reset, new ones refused);
    the server itself, and every other test, carry on."""
    secret = "outage-secret"
    direct = infra.fresh_settings(tickets_webhook_secret=secret)
    url = make_url(direct.database_url)
    assert url.host is not None and url.port is not None
    async with tcp_proxy(url.host, url.port) as proxy:
        settings = direct.model_copy(update={"database_url": url.set(port=proxy.port).render_as_string(
            hide_password=False)})
        async with serving(create_app(settings)) as http:
            before = await http.post("/v1/track", json={
                "writeKey": KEY, "userId": "u", "event": "x", "messageId": "before"})
            assert before.status_code == 200, before.text
            await proxy.cut()
            ticket = {"ticket_id": "T-9", "account_id": "acme", "status": "open",
                      "updated_at": "2026-11-20T10:00:00Z"}
            signed = orjson.dumps(ticket)
            timestamp = str(int(time.time()))
            attempts = [
                ("/v1/track", {"json": {"writeKey": KEY, "userId": "u", "event": "x", "messageId": "o1"}}),
                ("/v1/batch", {"json": {"writeKey": KEY, "batch": [
                    {"type": "track", "userId": "u", "event": "x", "messageId": f"o{n}"} for n in (2, 3)]}}),
                ("/v1/tickets", {"json": {"writeKey": KEY, **ticket}}),
                ("/v1/webhooks/tickets", {"content": signed, "headers": {
                    "X-Churnwatch-Signature": generic_signature(secret, timestamp, signed),
                    "X-Churnwatch-Signature-Timestamp": timestamp}}),
            ]
            for path, request in attempts:
                response = await http.post(path, **request)
                assert response.status_code == 503, (path, response.text)
                body = response.json()
                assert body["code"] == "database_unavailable", path
                assert "retry" in body["message"]
                assert response.headers["Retry-After"] == "5"
            # Back: the pool reconnects by itself.
            await proxy.open()
            after = await http.post("/v1/track", json={
                "writeKey": KEY, "userId": "u", "event": "x", "messageId": "after"})
            assert after.status_code == 200, after.text
    assert sorted(await all_events(settings)) == ["after", "before"]


def test_only_unreachable_database_errors_are_outages() -> None:
    assert database_unreachable(ConnectionRefusedError(111, "refused"))
    assert database_unreachable(asyncpg.exceptions.ConnectionDoesNotExistError("closed"))
    assert database_unreachable(asyncpg.exceptions.AdminShutdownError("shutting down"))
    wrapped = sqlalchemy.exc.OperationalError("SELECT 1", {}, RuntimeError("wrapper"))
    wrapped.__cause__ = ConnectionResetError()
    assert not database_unreachable(wrapped)  # a wrapper's own cause is not walked past orig
    wrapped.orig = OSError("reset")  # type: ignore[assignment]
    assert database_unreachable(wrapped)
    assert not database_unreachable(asyncpg.exceptions.UndefinedTableError("no such table"))
    assert not database_unreachable(ValueError("a bug"))


async def test_a_slow_kafka_is_pushed_back_on_not_buffered(infra: Infra) -> None:
    """Events waiting for acks are bounded: past the bound a request is refused at once."""
    async with stuck_broker() as port:
        settings = infra.fresh_settings(kafka_bootstrap_servers=f"127.0.0.1:{port}",
                                        produce_timeout_seconds=5.0, max_in_flight_events=3)
        async with serving(create_app(settings)) as http:
            await refused_while_the_first_waits(http)


async def refused_while_the_first_waits(http: httpx.AsyncClient) -> None:
    def track(n: int) -> dict[str, object]:
        return {"type": "track", "userId": "u", "event": "x", "messageId": f"slow-{n}"}

    waiting = asyncio.create_task(http.post("/v1/batch", json={
        "writeKey": KEY, "batch": [track(1), track(2)]}))
    try:
        await eventually(lambda: events_awaiting_acks() == 2, "the first request holds 2 of 3 places")
        refused = await http.post("/v1/batch", json={
            "writeKey": KEY, "batch": [track(3), track(4)]})
        # Refused without waiting for Kafka: the first request is still waiting for its acks.
        assert not waiting.done()
        assert refused.status_code == 503
        assert refused.json()["code"] == "overloaded"
        assert refused.headers["Retry-After"] == "1"
    finally:
        first = await waiting  # never left running, whatever failed above
    assert first.json()["code"] == "kafka_unavailable"


async def test_a_group_whose_membership_save_fails_publishes_nothing(settings: Settings,
                                                                     client: httpx.AsyncClient) -> None:
    """The save runs before the publish, never beside it: a request that fails has published
    nothing, and its retry (once the save works) publishes each event once."""
    dsn = make_url(settings.database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute("""
            CREATE FUNCTION refuse_membership() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'membership refused'; END $$;
            CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON user_accounts
            FOR EACH ROW WHEN (NEW.account_id = 'refused') EXECUTE FUNCTION refuse_membership();
        """)
        body = {"writeKey": KEY, "batch": [
            {"type": "group", "userId": "u9", "groupId": "refused", "messageId": "g-refused"},
            {"type": "track", "userId": "u9", "event": "Report Built", "messageId": "t-refused"}]}
        failed = await client.post("/v1/batch", json=body)
        assert failed.status_code == 500, failed.text
        assert failed.json()["code"] == "internal_error"  # the documented JSON, not plain text
        assert await all_events(settings) == []
        await connection.execute("DROP TRIGGER refuse ON user_accounts")
    finally:
        await connection.close()
    retried = await client.post("/v1/batch", json=body)
    assert retried.status_code == 200, retried.text
    assert sorted(await all_events(settings)) == ["g-refused", "t-refused"]
    usage = await read_topic(settings, Topics.from_settings(settings).usage)
    assert usage[0].account_id == "refused"
