"""Real Segment-protocol clients, unmodified, against ingest running as a real process.

Each sends a few thousand events (group, identify, then tracks per user) the way it does in
production: a background thread batching into `/v1/batch`. Every messageId the client
generated must then be on Kafka exactly once, from that client's write key, with tracks
attributed to the account of their user's group call.

- `segment-analytics-python` 2.4 (`segment.analytics`): `writeKey` in the body;
- `analytics-python` 1.2.9 (`analytics`): HTTP Basic auth;
- `rudder-sdk-python` 2.1 (`rudderstack.analytics`): HTTP Basic auth, gzip on.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local.processes import free_port
from shared.settings import Settings
from shared.topics import Topics
from tests.support.infra import Infra
from tests.support.kafka import read_topic
from tests.support.processes import ServiceProcess

USERS = 150
TRACKS_PER_USER = 18  # with a group and an identify each: 3,000 events per client
ADMIN_TOKEN = "clients-admin-token"


@dataclass(frozen=True)
class Ingest:
    settings: Settings
    base_url: str


@pytest.fixture(scope="module")
def ingest(infra: Infra) -> Iterator[Ingest]:
    settings = infra.fresh_settings(admin_token=ADMIN_TOKEN)
    with tempfile.TemporaryDirectory() as logs:
        process = ServiceProcess("ingest", settings, free_port(), Path(logs)).start()
        try:
            yield Ingest(settings, process.base_url)
        finally:
            process.stop()


def issue_key(ingest: Ingest, source: str) -> str:
    response = httpx.post(f"{ingest.base_url}/v1/admin/write-keys", json={"source": source},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    response.raise_for_status()
    key: str = response.json()["key"]
    return key


def segment_client(key: str, host: str, on_error: Callable[..., None]) -> Any:
    from segment.analytics.client import Client

    return Client(write_key=key, host=host, on_error=on_error, upload_size=100)


def analytics_1x_client(key: str, host: str, on_error: Callable[..., None]) -> Any:
    from analytics.client import Client

    return Client(write_key=key, host=host, on_error=on_error)


def rudder_client(key: str, host: str, on_error: Callable[..., None]) -> Any:
    from rudderstack.analytics.client import Client

    return Client(write_key=key, host=host, on_error=on_error, gzip=True, upload_size=100)


def send_everything(client: Any, prefix: str) -> list[dict[str, Any]]:
    """What a product backend does: group, identify, then usage; returns the messages sent."""
    sent = []
    for u in range(USERS):
        user, account = f"{prefix}-user-{u}", f"{prefix}-acct-{u % 10}"
        sent.append(client.group(user, account, {"name": f"Account {u % 10}", "plan": "pro"})[1])
        sent.append(client.identify(user, {"email": f"{user}@example.com"})[1])
        for n in range(TRACKS_PER_USER):
            sent.append(client.track(user, "Report Built", {"rows": n, "format": "csv"})[1])
    client.flush()
    return sent


@pytest.mark.parametrize(
    ("make_client", "source"),
    [(segment_client, "segment-python-2"), (analytics_1x_client, "analytics-python-1"),
     (rudder_client, "rudder-python-2")],
    ids=["segment-analytics-python", "analytics-python-1.x", "rudder-sdk-python"],
)
async def test_every_event_of_a_real_client_arrives_exactly_once(
    ingest: Ingest, make_client: Callable[[str, str, Callable[..., None]], Any], source: str
) -> None:
    errors: list[Any] = []
    key = await asyncio.to_thread(issue_key, ingest, source)
    client = make_client(key, ingest.base_url, lambda error, items: errors.append((error, len(items))))
    sent = await asyncio.to_thread(send_everything, client, source)
    assert errors == []
    assert len(sent) == USERS * (2 + TRACKS_PER_USER)
    assert all(message.get("messageId") for message in sent)

    topics = Topics.from_settings(ingest.settings)
    arrived = [e for topic in (topics.usage, topics.traits)
               for e in await read_topic(ingest.settings, topic, timeout=30) if e.source == source]
    copies = Counter(e.event_id for e in arrived)
    assert set(copies) == {m["messageId"] for m in sent}
    assert max(copies.values()) == 1  # exactly once
    by_id = {e.event_id: e for e in arrived}
    for message in sent:
        event = by_id[message["messageId"]]
        assert event.type.value == message["type"]
        assert event.user_id == message["userId"]
        expected_account = f"{source}-acct-{int(message['userId'].rsplit('-', 1)[1]) % 10}"
        assert event.account_id == expected_account, message


def near_limit_tracks(key: str, host: str, on_error: Callable[..., None], count: int
                      ) -> list[dict[str, Any]]:
    """`count` tracks of exactly the client's own size limit, sent the client's way (batched
    until 475,000 bytes of items), so both of ingest's limits meet the client's at their edge."""
    from segment.analytics.client import Client
    from segment.analytics.consumer import MAX_MSG_SIZE
    from segment.analytics.request import DatetimeSerializer

    def measured(message: dict[str, Any]) -> int:  # as the client measures, before refusing
        return len(json.dumps(message, cls=DatetimeSerializer).encode())

    # A probe that sends nothing gives the size of everything but the padding (the client's
    # ids and timestamps are of fixed length).
    probe = Client(write_key=key, host=host, send=False)
    overhead = measured(probe.track("near-user", "Export Built", {"pad": ""},
                                    context={"groupId": "near-acct"}, message_id="near-0000")[1])
    pad = "x" * (MAX_MSG_SIZE - overhead)
    client = Client(write_key=key, host=host, on_error=on_error)
    sent = []
    for n in range(count):
        ok, message = client.track("near-user", "Export Built", {"pad": pad},
                                   context={"groupId": "near-acct"}, message_id=f"near-{n:04d}")
        assert ok and measured(message) == MAX_MSG_SIZE
        sent.append(message)
    client.flush()
    return sent


async def test_events_at_the_clients_own_size_limit_arrive(ingest: Ingest) -> None:
    errors: list[Any] = []
    key = await asyncio.to_thread(issue_key, ingest, "segment-near-limit")
    sent = await asyncio.to_thread(near_limit_tracks, key, ingest.base_url,
                                   lambda error, items: errors.append((error, len(items))), 40)
    assert errors == []
    topics = Topics.from_settings(ingest.settings)
    arrived = Counter(e.event_id for e in await read_topic(ingest.settings, topics.usage, timeout=30)
                      if e.source == "segment-near-limit")
    assert arrived == Counter(m["messageId"] for m in sent)
