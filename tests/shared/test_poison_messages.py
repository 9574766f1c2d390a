"""Issue 17, no single event stops the pipeline: poison isolation, bounded dead-lettering, the
size and topic checks at decode, and `churnwatch dead-letters` (real Kafka and PostgreSQL)."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared import dead_letters
from shared.consumer import ConsumedEvent, DurableConsumer, HandlerResult, consumer_offsets
from shared.db import create_engine, migrate, session_factory
from shared.events import Envelope, EventType, encode
from shared.metrics import DEAD_LETTER_LIMIT_STOPS, POISON_ISOLATIONS
from shared.poison import (
    DeadLetterLimit,
    DeadLetterLimitExceeded,
    DeadLetterLimitSettings,
    caused_by_content,
)
from shared.publisher import EventPublisher, RawMessage
from shared.settings import Settings
from shared.topics import Topics, ensure_topics
from tests.support.infra import Infra
from tests.support.tcp_proxy import tcp_proxy
from tests.support.waiting import eventually

# A column narrower than some content: PostgreSQL refuses the longer value (22001), as it would
# any value a table cannot hold. (NUL, the other such content, is refused earlier, at decode.)
NOTE_LIMIT = 16
SINK = (
    "CREATE TABLE IF NOT EXISTS poison_sink "
    f"(event_id text NOT NULL, payload jsonb NOT NULL, note varchar({NOTE_LIMIT}))"
)


def envelope(event_id: str, payload: dict[str, object], account: str = "acme",
             type_: EventType = EventType.TRACK) -> Envelope:
    now = datetime.now(UTC)
    return Envelope(event_id=event_id, type=type_, account_id=account, occurred_at=now,
                    received_at=now, source="test", payload=payload)


def poisoned(event_id: str, account: str = "acme") -> Envelope:
    # A valid envelope whose note is longer than the table's column: 22001 from PostgreSQL.
    return envelope(event_id, {"event": "x", "note": "too long for the note column"}, account)


async def write_payloads(session: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
    """A handler that stores every payload as jsonb, in one statement for the batch."""
    await session.execute(
        text("INSERT INTO poison_sink (event_id, payload, note) "
             "SELECT i, CAST(p AS jsonb), CAST(p AS jsonb) ->> 'note' "
             "FROM unnest(CAST(:ids AS text[]), CAST(:ps AS text[])) AS u(i, p)"),
        {"ids": [e.envelope.event_id for e in events],
         "ps": [orjson.dumps(e.envelope.payload).decode() for e in events]})
    return HandlerResult()


@contextlib.asynccontextmanager
async def stack(settings: Settings) -> AsyncIterator[tuple[AsyncEngine, EventPublisher, Topics]]:
    await migrate(settings)
    await ensure_topics(settings)
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.execute(text(SINK))
    publisher = EventPublisher(settings, "test")
    try:
        yield engine, publisher, Topics.from_settings(settings)
    finally:
        await publisher.stop()
        await engine.dispose()


def consumer_for(settings: Settings, engine: AsyncEngine, publisher: EventPublisher,  # type: ignore[no-untyped-def]
                 topics: Topics, handler=write_payloads, service: str = "test") -> DurableConsumer:
    return DurableConsumer(settings=settings, service=service, group_id="g", topics=[topics.usage],
                           sessions=session_factory(engine), publisher=publisher, handler=handler)


async def sink_ids(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.execute(text("SELECT event_id FROM poison_sink"))).scalars().all())


async def stored_total(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.coalesce(func.sum(consumer_offsets.c.next_offset), 0))
                                    .where(consumer_offsets.c.consumer_group == "g"))).scalar()
    return int(total or 0)


async def test_a_jsonb_nul_poisons_only_itself(settings: Settings) -> None:
    async with stack(settings) as (engine, publisher, topics):
        good = [envelope(f"good-{i}", {"event": "x", "n": i}, account=f"acct-{i % 3}") for i in range(9)]
        batch = [*good[:4], poisoned("poison-1", account="acct-1"), *good[4:]]
        await publisher.publish(batch)
        isolated_before = POISON_ISOLATIONS.labels("test", "isolated")._value.get()
        consumer = consumer_for(settings, engine, publisher, topics)
        running = asyncio.create_task(consumer.run())
        try:
            await eventually(lambda: _total_is(engine, 10), "all 10 offsets stored", within=60)
            letters = await dead_letters.read_dead_letters(settings)
            assert [d.failure for d in letters] == ["processing"]
            letter = letters[0]
            assert "22001" in letter.reason and "database refused" in letter.reason
            assert letter.source_topic == topics.usage
            assert letter.consumer_group == "g"
            # Its position: the offset the poison was published at, on its own partition.
            assert letter.source_partition is not None and letter.source_offset is not None
            assert orjson.loads(letter.value or b"")["event_id"] == "poison-1"
            # The good events exactly once.
            assert await sink_ids(engine) == sorted(e.event_id for e in good)
            assert POISON_ISOLATIONS.labels("test", "isolated")._value.get() == isolated_before + 1
            # Still consuming.
            await publisher.publish([envelope("after", {"event": "y"})])
            await eventually(lambda: _has(engine, "after"), "an event after the poison applied")
            assert not running.done()
        finally:
            consumer.stop()
            await asyncio.wait_for(running, timeout=30)
        assert await sink_ids(engine) == sorted([e.event_id for e in good] + ["after"])
        assert len(await dead_letters.read_dead_letters(settings)) == 1


async def _total_is(engine: AsyncEngine, total: int) -> bool:
    return await stored_total(engine) == total


async def _has(engine: AsyncEngine, event_id: str) -> bool:
    return event_id in await sink_ids(engine)


async def test_infrastructure_errors_dead_letter_nothing(settings: Settings) -> None:
    calls = 0

    async def flaky(session: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
        nonlocal calls
        calls += 1
        if calls <= 2:
            raise ConnectionRefusedError("database away")
        return await write_payloads(session, events)

    async with stack(settings) as (engine, publisher, topics):
        await publisher.publish([envelope(f"e{i}", {"event": "x"}) for i in range(5)])
        consumer = consumer_for(settings, engine, publisher, topics, handler=flaky)
        running = asyncio.create_task(consumer.run())
        try:
            await eventually(lambda: _total_is(engine, 5), "retried until durable", within=60)
        finally:
            consumer.stop()
            await asyncio.wait_for(running, timeout=30)
        assert calls >= 3
        assert await sink_ids(engine) == [f"e{i}" for i in range(5)]
        assert await dead_letters.read_dead_letters(settings) == []


def failures_of(service: str) -> float:
    return sum(sample.value for family in REGISTRY.collect() if family.name == "churnwatch_batch_failures"
               for sample in family.samples
               if sample.name.endswith("_total") and sample.labels.get("service") == service)


async def test_the_database_going_down_dead_letters_nothing(settings: Settings) -> None:
    async with stack(settings) as (engine, publisher, topics):
        url = make_url(settings.database_url)
        async with tcp_proxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
            through = settings.model_copy(update={"database_url": url.set(
                host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)})
            proxied = create_engine(through)
            consumer = consumer_for(through, proxied, publisher, topics, service="test-db-down")
            running = asyncio.create_task(consumer.run())
            try:
                await publisher.publish([envelope(f"before-{i}", {"event": "x"}) for i in range(3)])
                await eventually(lambda: _total_is(engine, 3), "the first events durable", within=60)
                await proxy.cut()
                # A poison among them too: while the database is away nothing is dead-lettered.
                await publisher.publish([*(envelope(f"during-{i}", {"event": "x"}) for i in range(4)),
                                         poisoned("poison-db-down")])
                await eventually(lambda: failures_of("test-db-down") >= 2,
                                 "batches failing while the database is down", within=60)
                assert await dead_letters.read_dead_letters(settings) == []
                await proxy.open()
                await eventually(lambda: _total_is(engine, 8), "every offset stored", within=90)
            finally:
                consumer.stop()
                await asyncio.wait_for(running, timeout=30)
                await proxied.dispose()
        assert await sink_ids(engine) == sorted([f"before-{i}" for i in range(3)]
                                                + [f"during-{i}" for i in range(4)])
        letters = await dead_letters.read_dead_letters(settings)
        # Only the poison, once the database was back.
        assert [orjson.loads(d.value or b"")["event_id"] for d in letters] == ["poison-db-down"]


async def test_the_dead_letter_limit_stops_a_consumer_fed_only_poison(infra: Infra) -> None:
    settings = infra.fresh_settings(consumer_dead_letter_max_consecutive=3)
    async with stack(settings) as (engine, publisher, topics):
        await publisher.publish([poisoned(f"p{i}") for i in range(10)])  # one account: one partition
        stops_before = DEAD_LETTER_LIMIT_STOPS.labels("test", "g", "consecutive")._value.get()
        consumer = consumer_for(settings, engine, publisher, topics)
        with pytest.raises(DeadLetterLimitExceeded, match="in a row"):
            await asyncio.wait_for(consumer.run(), timeout=90)
        assert consumer.running is False
        assert DEAD_LETTER_LIMIT_STOPS.labels("test", "g", "consecutive")._value.get() == stops_before + 1
        # Three dead-lettered (the limit), the fourth stopped it: nothing past them committed.
        assert len(await dead_letters.read_dead_letters(settings)) == 3
        assert await stored_total(engine) == 3
        assert await sink_ids(engine) == []


async def test_oversized_and_misplaced_envelopes_are_dead_lettered_at_decode(settings: Settings) -> None:
    async with stack(settings) as (engine, publisher, topics):
        big = envelope("big", {"event": "x", "blob": "a" * (70 << 10)})
        misplaced = envelope("ticket-on-usage", {"ticket_id": "t1"}, type_=EventType.TICKET)
        fine = envelope("fine", {"event": "x"})
        await publisher.publish_raw(topics.usage, [
            RawMessage(key=e.partition_key(), value=encode(e), headers=[]) for e in (big, misplaced, fine)])
        consumer = consumer_for(settings, engine, publisher, topics)
        running = asyncio.create_task(consumer.run())
        try:
            await eventually(lambda: _total_is(engine, 3), "all three offsets stored", within=60)
        finally:
            consumer.stop()
            await asyncio.wait_for(running, timeout=30)
        assert await sink_ids(engine) == ["fine"]
        letters = {d.failure: d for d in await dead_letters.read_dead_letters(settings)}
        assert set(letters) == {"too_large", "wrong_topic"}
        assert "CHURNWATCH_CONSUMER_MAX_ENVELOPE_BYTES" in letters["too_large"].reason
        assert "ticket" in letters["wrong_topic"].reason and topics.usage in letters["wrong_topic"].reason


async def test_dead_letters_cli_list_show_replay(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async with stack(settings) as (engine, publisher, topics):
        await publisher.publish([envelope("ok", {"event": "x"}), poisoned("poison-cli")])
        consumer = consumer_for(settings, engine, publisher, topics)
        running = asyncio.create_task(consumer.run())
        try:
            await eventually(lambda: _total_is(engine, 2), "both offsets stored", within=60)
            letters = await dead_letters.read_dead_letters(settings)
            assert len(letters) == 1
            letter_id = letters[0].id

            async def cli(*argv: str) -> tuple[int, str]:
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    code = await dead_letters.run(dead_letters.parser().parse_args(list(argv)), settings)
                return code, out.getvalue()

            code, listed = await cli("list")
            assert code == 0 and letter_id in listed and topics.usage in listed and "processing" in listed
            code, listed_json = await cli("list", "--json", "--reason", "22001")
            rows = [orjson.loads(line) for line in listed_json.splitlines()]
            assert [r["id"] for r in rows] == [letter_id] and rows[0]["replayed"] is False
            code, shown = await cli("show", letter_id)
            assert code == 0 and '"event_id": "poison-cli"' in shown and "churnwatch.source_offset" in shown

            # The handler is fixed (here: it shortens the note), then the dead letter replayed.
            consumer.stop()
            await asyncio.wait_for(running, timeout=30)

            async def fixed(session: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
                cleaned = [ConsumedEvent(e.topic, e.partition, e.offset, e.envelope.model_copy(
                    update={"payload": {**e.envelope.payload,
                                        "note": str(e.envelope.payload.get("note", ""))[:NOTE_LIMIT]}}))
                           for e in events]
                return await write_payloads(session, cleaned)

            consumer = consumer_for(settings, engine, publisher, topics, handler=fixed)
            running = asyncio.create_task(consumer.run())
            code, replayed = await cli("replay", "--id", letter_id)
            assert code == 0 and "1 replayed, 0 skipped" in replayed
            await eventually(lambda: _has(engine, "poison-cli"), "the replayed event applied", within=60)
            # Idempotent: a second replay is skipped; a forced one is dropped as a duplicate.
            code, again = await cli("replay", "--all", "--reason", "22001")
            assert code == 0 and "0 replayed, 1 skipped" in again
            code, forced = await cli("replay", "--id", letter_id, "--force")
            assert code == 0 and "1 replayed" in forced
            await eventually(lambda: _total_is(engine, 4), "the forced replay consumed", within=60)
            code, listed_json = await cli("list", "--json")
            assert [orjson.loads(line)["replayed"] for line in listed_json.splitlines()] == [True]
            code, _ = await cli("show", "99:99")
            assert code == 1
        finally:
            consumer.stop()
            await asyncio.wait_for(running, timeout=30)
        assert (await sink_ids(engine)).count("poison-cli") == 1
        assert len(await dead_letters.read_dead_letters(settings)) == 1


# --- the limit and the error classes, without a broker ----------------------------------------


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


def test_the_ratio_counts_dead_letters_over_the_window() -> None:
    limit = DeadLetterLimit(DeadLetterLimitSettings(max_ratio=0.05, window=100, max_consecutive=50))
    tp = TopicPartition("t", 0)
    offset = 0
    # 1 in 20 (5%): fine for ever, the window slides.
    for _ in range(30):
        records = [_Record(offset + i) for i in range(20)]
        limit.record(limit.check({tp: records}, {tp: [offset + 7]}))
        offset += 20
    # 1 in 10 (10%): stops once more than 5 of the last 100 offsets were dead-lettered.
    with pytest.raises(DeadLetterLimitExceeded, match="of the last 100") as stopped:
        for _ in range(10):
            records = [_Record(offset + i) for i in range(10)]
            limit.record(limit.check({tp: records}, {tp: [offset + 3]}))
            offset += 10
    assert stopped.value.limit == "ratio"


def test_consecutive_dead_letters_carry_across_batches_and_reset_on_a_good_one() -> None:
    limit = DeadLetterLimit(DeadLetterLimitSettings(max_ratio=1.0, window=1000, max_consecutive=3))
    tp = TopicPartition("t", 0)
    limit.record(limit.check({tp: [_Record(0), _Record(1)]}, {tp: [0, 1]}))
    limit.record(limit.check({tp: [_Record(2)]}, {tp: []}))  # a good one: the run ends
    limit.record(limit.check({tp: [_Record(3), _Record(4)]}, {tp: [3, 4]}))
    limit.record(limit.check({tp: [_Record(5)]}, {tp: [5]}))  # 3 in a row: at the limit
    with pytest.raises(DeadLetterLimitExceeded, match="4 events in a row"):
        limit.check({tp: [_Record(6)]}, {tp: [6]})
    assert not DeadLetterLimit(DeadLetterLimitSettings(0.05, 10, 3)).active


def test_content_errors_and_infrastructure_errors() -> None:
    from sqlalchemy.exc import DataError, OperationalError

    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__("x")
            self.sqlstate = sqlstate

    assert caused_by_content(DataError("stmt", {}, Orig("22P05")))
    assert caused_by_content(ValueError("bad payload"))
    assert caused_by_content(OverflowError("too big"))
    assert caused_by_content(orjson.JSONEncodeError("Integer exceeds 64-bit range"))
    assert not caused_by_content(OperationalError("stmt", {}, Orig("08006")))
    assert not caused_by_content(OperationalError("stmt", {}, Orig("57P01")))  # admin shutdown
    assert not caused_by_content(ConnectionRefusedError("refused"))
    assert not caused_by_content(OSError("database away"))
    assert not caused_by_content(KeyError("a bug"))
    assert not caused_by_content(DeadLetterLimitExceeded("stop", "ratio"))


async def test_dead_letters_are_read_within_bounds(settings: Settings) -> None:
    async with stack(settings) as (engine, publisher, topics):
        await publisher.publish([poisoned(f"bounded-{i}") for i in range(4)])  # one account: one partition
        consumer = consumer_for(settings, engine, publisher, topics)
        running = asyncio.create_task(consumer.run())
        try:
            await eventually(lambda: _total_is(engine, 4), "all four offsets stored", within=60)
        finally:
            consumer.stop()
            await asyncio.wait_for(running, timeout=30)
        every = await dead_letters.read_dead_letters(settings)
        assert len(every) == 4

        async def ids_within(bounds: dead_letters.Bounds) -> list[str]:
            return [d.id for d in await dead_letters.read_dead_letters(settings, bounds=bounds)]

        assert await ids_within(dead_letters.Bounds(last=2)) == [d.id for d in every[-2:]]
        assert await ids_within(dead_letters.Bounds(ids=[every[1].id, every[3].id])) == [
            every[1].id, every[3].id]
        assert await ids_within(dead_letters.Bounds(since=every[0].timestamp)) == [d.id for d in every]
        assert await ids_within(dead_letters.Bounds(since=every[-1].timestamp + timedelta(seconds=1))) == []
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = await dead_letters.run(dead_letters.parser().parse_args(["list", "--last", "1"]), settings)
        assert code == 0 and every[-1].id in out.getvalue() and "1 dead letter(s)" in out.getvalue()
