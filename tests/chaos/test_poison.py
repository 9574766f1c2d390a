"""Poison of every kind on every consumed topic, then the official Segment client's load, with
the whole system running as real processes.

Each kind of bad record (bytes that are not JSON, a tombstone, JSON that is no envelope, an
envelope of the wrong schema, NUL text, times out of the window, an oversized envelope, a type
that does not belong on the topic) goes onto each topic a service consumes, on the partitions
the load's accounts use. Every consumer of each topic dead-letters each of them exactly once,
naming its position, and moves on: the load behind them is applied in full and counted once,
and every service stays ready.

(tests/shared/test_poison_messages.py proves the isolation and the limit on one consumer.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from services.scoring.overrides import override_topic
from shared import dead_letters
from shared.events import EventType
from shared.topics import Topics, ensure_topics
from tests.chaos.pipeline import GROUPS, assert_nothing_lost_nothing_twice, query
from tests.support.segment_load import SegmentLoad, sending
from tests.support.stack import Stack
from tests.support.waiting import eventually


@dataclass(frozen=True)
class Readers:
    services: tuple[str, ...]
    own_type: EventType  # a type that belongs on the topic


def consumed_topics(stack: Stack) -> dict[str, Readers]:
    topics, prefix = Topics.from_settings(stack.settings), stack.settings.topic_prefix
    return {
        topics.usage: Readers(("scoring",), EventType.TRACK),
        topics.traits: Readers(("scoring", "alerts", "surveys"), EventType.GROUP),
        topics.tickets: Readers(("scoring", "surveys"), EventType.TICKET),
        topics.survey_responses: Readers(("scoring",), EventType.SURVEY_RESPONSE),
        topics.risk_signals: Readers(("alerts",), EventType.RISK_SIGNAL),
        override_topic(prefix): Readers(("scoring",), EventType.HEALTH_OVERRIDE),
    }


def envelope(event_id: str, type_: EventType, **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"schema_version": 1, "event_id": event_id, "type": type_.value,
            "account_id": "poison-acct-1", "user_id": "poison-user", "occurred_at": now.isoformat(),
            "received_at": now.isoformat(), "source": "chaos", "payload": {}} | changes


def foreign_type(type_: EventType) -> EventType:
    return EventType.TICKET if type_ is not EventType.TICKET else EventType.TRACK


# name -> the record's value, given the topic's own type and a unique id
POISON: dict[str, Callable[[EventType, str], bytes | None]] = {
    "not_json": lambda t, i: b"\xff\xfe\x00 not json " + i.encode(),
    "tombstone": lambda t, i: None,
    "not_an_envelope": lambda t, i: orjson.dumps({"hello": "world", "id": i}),
    "wrong_schema": lambda t, i: orjson.dumps(envelope(i, t, occurred_at="last tuesday", schema_version=7)),
    "nul_text": lambda t, i: orjson.dumps(envelope(i, t, payload={"name": "Acme\u0000", "event": "x\u0000"})),
    "nul_id": lambda t, i: orjson.dumps(envelope(i + "\u0000", t, account_id="poison\u0000acct")),
    "year_9999": lambda t, i: orjson.dumps(envelope(i, t, occurred_at="9999-12-31T23:59:59Z")),
    "year_0001": lambda t, i: orjson.dumps(envelope(i, t, occurred_at="0001-01-01T00:00:00Z")),
    "days_ahead": lambda t, i: orjson.dumps(envelope(
        i, t, occurred_at=(datetime.now(UTC) + timedelta(days=3)).isoformat())),
    "oversize": lambda t, i: orjson.dumps(envelope(i, t, payload={"blob": "a" * (70 << 10)})),
    "wrong_topic": lambda t, i: orjson.dumps(envelope(i, foreign_type(t))),
}


async def put_poison(stack: Stack, keys: list[bytes]) -> Counter[tuple[str, str, int, int]]:
    """Every kind on every consumed topic under each key; the dead letters that must follow,
    as (group, source topic, partition, offset)."""
    expected: Counter[tuple[str, str, int, int]] = Counter()
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for topic, readers in consumed_topics(stack).items():
            for key in keys:
                for kind, make in POISON.items():
                    value = make(readers.own_type, f"poison-{kind}-{topic}-{key.decode()}")
                    sent = await producer.send_and_wait(topic, value=value, key=key)
                    for service in readers.services:
                        expected[(GROUPS[service], topic, sent.partition, sent.offset)] += 1
    finally:
        await producer.stop()
    return expected


async def test_poison_of_every_kind_on_every_consumed_topic_is_dead_lettered_and_passed(
        stack: Stack) -> None:
    await ensure_topics(stack.settings)
    load = SegmentLoad(stack.url("ingest"), "poison", users=30, tracks_per_user=4)
    # Keyed as three of the load's accounts: on their partitions, ahead of their events.
    keys = [load.account_of(n).encode() for n in range(3)]
    expected = await put_poison(stack, keys)

    async def all_dead_lettered() -> bool:
        return len(await dead_letters.read_dead_letters(stack.settings)) >= sum(expected.values())
    await eventually(all_dead_lettered, "every poison dead-lettered by every consumer", within=180)
    # The load after the poison: the partitions moved on.
    with sending(load):
        pass
    await assert_nothing_lost_nothing_twice(stack, load)

    letters = await dead_letters.read_dead_letters(stack.settings)
    got = Counter((d.consumer_group, d.source_topic, d.source_partition, d.source_offset) for d in letters)
    assert got == expected
    assert all(d.reason and d.failure for d in letters)
    by_kind = Counter(d.failure for d in letters)
    assert set(by_kind) <= {"decode", "too_large", "wrong_topic"}, by_kind
    # Every poisoned partition was committed past its poison, by each of its consumers.
    offsets = {(g, t, p): o for g, t, p, o in await query(
        stack.settings, "SELECT consumer_group, topic, partition, next_offset FROM consumer_offsets")}
    for group, topic, partition, offset in expected:
        assert offsets[(group, topic, partition)] > offset, (group, topic, partition)
