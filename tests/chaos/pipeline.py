"""What the chaos tests read back from the whole system: what reached Kafka, what each consumer
made durable in PostgreSQL, what was dead-lettered, and whether every service is ready."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import text

from shared import dead_letters
from shared.db import create_engine
from shared.events import Envelope, EventType, InvalidEvent, decode
from shared.settings import Settings
from shared.topics import Topics
from tests.support.kafka import read_raw_topic
from tests.support.segment_load import SegmentLoad
from tests.support.stack import Stack
from tests.support.waiting import eventually

# Each consuming service's group (processed ids are kept under it) and what it reads.
GROUPS = {"scoring": "churnwatch-scoring", "alerts": "churnwatch-alerts", "surveys": "churnwatch-surveys"}
TRAITS_TYPES = ("group", "identify")


async def query(settings: Settings, sql: str, **params: Any) -> list[Any]:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def processed(settings: Settings, service: str) -> set[str]:
    """The event ids `service`'s consumer has made durable (remembered with its offsets)."""
    rows = await query(settings, "SELECT event_id FROM processed_events WHERE consumer_group = :g",
                       g=GROUPS[service])
    return {r[0] for r in rows}


def expected_by(load: SegmentLoad) -> dict[str, set[str]]:
    """The ids each consumer must end up with: scoring everything, alerts and surveys the traits."""
    return {"scoring": load.message_ids, "alerts": load.ids_of(*TRAITS_TYPES),
            "surveys": load.ids_of(*TRAITS_TYPES)}


async def wait_until_consumed(stack: Stack, load: SegmentLoad, within: float = 240.0) -> None:
    expected = expected_by(load)  # once the load is sent: it no longer grows

    async def all_consumed() -> bool:
        for service, ids in expected.items():
            if not ids <= await processed(stack.settings, service):
                return False
        return True
    await eventually(all_consumed, "every consumer made every event durable", within=within)


async def on_kafka(settings: Settings, *topics: str) -> list[Envelope]:
    """The envelopes on `topics` that decode (poison, where a test put some, does not)."""
    found = []
    for topic in topics:
        for value in await read_raw_topic(settings, topic, timeout=60):
            try:
                found.append(decode(value))
            except InvalidEvent:
                continue
    return found


async def assert_nothing_lost_nothing_twice(stack: Stack, load: SegmentLoad) -> None:
    """The client's every event on Kafka once; each consumer made each durable once; scoring's
    per-account counts are the events sent; alerts and surveys hold every account and contact."""
    settings, topics = stack.settings, Topics.from_settings(stack.settings)
    assert load.errors == [], "the client gave up on events"
    sent = load.message_ids
    assert len(load.sent) == len(sent)

    arrived = [e for e in await on_kafka(settings, topics.usage, topics.traits) if e.event_id in sent]
    copies = Counter(e.event_id for e in arrived)
    assert {m: n for m, n in copies.items() if n > 1} == {}, "a messageId on Kafka twice"
    assert set(copies) == sent, "an acknowledged event missing on Kafka"

    await wait_until_consumed(stack, load)
    # Nothing counted twice: each account's events_applied is exactly its events on Kafka that
    # scoring folds in (a user's identify is a contact's traits, not an account's).
    per_account = Counter(e.account_id for e in arrived
                          if e.account_id is not None and e.type is not EventType.IDENTIFY)
    applied = dict(await query(settings, "SELECT account_id, events_applied FROM account_health"
                                         " WHERE account_id = ANY(:a)", a=sorted(load.accounts)))
    assert applied == dict(per_account)
    changes = await query(settings, "SELECT account_id, event_id FROM score_changes")
    assert len(changes) == len(set(changes)), "one event recorded two score changes"

    contacts = dict(await query(settings, "SELECT account_id, account_name FROM account_contacts"))
    assert {a: contacts.get(a) for a in load.accounts} == {a: f"Account {a}" for a in load.accounts}
    emails = dict(await query(settings, "SELECT user_id, email FROM survey_contacts"))
    users = {m["userId"] for m in load.sent}
    assert {u: emails.get(u) for u in users} == {u: f"{u}@example.com" for u in users}

    assert stack.not_ready() == {}


async def assert_nothing_dead_lettered(settings: Settings) -> None:
    """A crash or an outage is no reason to dead-letter anything."""
    letters = await dead_letters.read_dead_letters(settings)
    assert [letter.summary() for letter in letters] == []
