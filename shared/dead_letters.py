"""`churnwatch dead-letters list|show|replay`: what consumers put on the dead-letter topic.

A dead letter is named by its place on the dead-letter topic, `<partition>:<offset>` (e.g.
`3:117`). Its headers (written by `shared.consumer.DurableConsumer`) say why it was dead-lettered
and where it came from: `churnwatch.reason`, `churnwatch.failure` (decode, too_large,
wrong_topic, rejected, processing), `churnwatch.source_topic`, `churnwatch.source_partition`,
`churnwatch.source_offset`, `churnwatch.consumer_group`.

`replay` puts the selected dead letters back on their source topic, key and value unchanged (a
`churnwatch.replayed_from` header added), and records each replay in PostgreSQL
(`dead_letter_replays`) in the same step: replaying one again is skipped unless `--force`.
Consumers drop an event whose id they processed already, so even a forced replay of an event
that got through counts once. A replayed event lands after newer events of its partition: the
dead-letter topic does not keep per-account order.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import Column, DateTime, MetaData, Table, Text, func, text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.logging import configure_logging
from shared.operator_db import require_migrated
from shared.publisher import EventPublisher, RawMessage
from shared.settings import Settings, get_settings
from shared.topics import Topics

# The table, for the schema only: the statements below are plain SQL.
metadata = MetaData()
dead_letter_replays = Table(
    "dead_letter_replays",
    metadata,
    Column("dead_letter_topic", Text, primary_key=True),
    Column("dead_letter_id", Text, primary_key=True),
    Column("source_topic", Text, nullable=False),
    Column("replayed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)


@dataclass(frozen=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return self.headers.get("churnwatch.reason", "")

    @property
    def failure(self) -> str:
        return self.headers.get("churnwatch.failure", "")

    @property
    def source_topic(self) -> str:
        return self.headers.get("churnwatch.source_topic", "")

    @property
    def source_partition(self) -> int | None:
        value = self.headers.get("churnwatch.source_partition")
        return int(value) if value and value.isdigit() else None

    @property
    def source_offset(self) -> int | None:
        value = self.headers.get("churnwatch.source_offset")
        return int(value) if value and value.isdigit() else None

    @property
    def consumer_group(self) -> str:
        return self.headers.get("churnwatch.consumer_group", "")

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id, "time": self.timestamp.isoformat(), "source_topic": self.source_topic,
            "source_partition": self.source_partition, "source_offset": self.source_offset,
            "consumer_group": self.consumer_group, "failure": self.failure, "reason": self.reason,
        }


@dataclass(frozen=True)
class Bounds:
    """Which part of the dead-letter topic to read: all of it by default. `since`: written at or
    after it; `last`: the newest `last`; `ids`: only these `<partition>:<offset>`, each partition
    read from the first to the last asked. Bounded, a read costs what it returns, not the topic."""

    since: datetime | None = None
    last: int | None = None
    ids: Sequence[str] = ()

    def wanted(self) -> dict[int, set[int]] | None:
        if not self.ids:
            return None
        by_partition: dict[int, set[int]] = {}
        for letter_id in self.ids:
            partition, _, offset = letter_id.partition(":")
            if partition.isdigit() and offset.isdigit():
                by_partition.setdefault(int(partition), set()).add(int(offset))
        return by_partition


async def read_dead_letters(settings: Settings, timeout: float = 30.0,
                            bounds: Bounds | None = None) -> list[DeadLetter]:
    """The messages on the dead-letter topic now within `bounds` (all by default), oldest first
    (no consumer group)."""
    bounds = bounds or Bounds()
    topic = Topics.from_settings(settings).dead_letter
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        cluster = await consumer._client.fetch_all_metadata()
        tps = [TopicPartition(topic, p) for p in sorted(cluster.partitions_for_topic(topic) or [])]
        wanted = bounds.wanted()
        if wanted is not None:
            tps = [tp for tp in tps if tp.partition in wanted]
        if not tps:
            return []
        consumer.assign(tps)
        first, end = await consumer.beginning_offsets(tps), await consumer.end_offsets(tps)
        start = dict(first)
        if bounds.since is not None:
            found = await consumer.offsets_for_times(
                {tp: int(bounds.since.timestamp() * 1000) for tp in tps})
            start = {tp: found[tp].offset if found[tp] is not None else end[tp] for tp in tps}
        if bounds.last is not None:
            start = {tp: max(start[tp], end[tp] - bounds.last) for tp in tps}
        if wanted is not None:
            start = {tp: max(start[tp], min(wanted[tp.partition])) for tp in tps}
            end = {tp: min(end[tp], max(wanted[tp.partition]) + 1) for tp in tps}
        reading = [tp for tp in tps if start[tp] < end[tp]]
        for tp in reading:
            consumer.seek(tp, start[tp])
        letters: list[DeadLetter] = []
        async with asyncio.timeout(timeout):
            while [tp for tp in reading if await consumer.position(tp) < end[tp]]:
                batch = await consumer.getmany(*reading, timeout_ms=200)
                for tp, records in batch.items():
                    for r in records:
                        asked = wanted is None or r.offset in wanted[tp.partition]
                        if r.offset >= end[tp] or not asked:
                            continue
                        letters.append(DeadLetter(
                            partition=tp.partition, offset=r.offset,
                            timestamp=datetime.fromtimestamp(r.timestamp / 1000, UTC),
                            key=r.key, value=r.value,
                            headers={k: v.decode("utf-8", "backslashreplace")
                                     for k, v in (r.headers or ())}))
        letters.sort(key=lambda d: (d.timestamp, d.partition, d.offset))
        return letters[-bounds.last:] if bounds.last is not None else letters
    finally:
        await consumer.stop()


def select_letters(letters: Sequence[DeadLetter], *, ids: Sequence[str] = (), reason: str | None = None,
                   source_topic: str | None = None, failure: str | None = None) -> list[DeadLetter]:
    wanted = set(ids)
    chosen = []
    for letter in letters:
        if wanted and letter.id not in wanted:
            continue
        if reason is not None and reason.lower() not in letter.reason.lower():
            continue
        if source_topic is not None and letter.source_topic != source_topic:
            continue
        if failure is not None and letter.failure != failure:
            continue
        chosen.append(letter)
    return chosen


_RECORD = text(
    "INSERT INTO dead_letter_replays (dead_letter_topic, dead_letter_id, source_topic) "
    "SELECT :topic, i, s FROM unnest(CAST(:ids AS text[]), CAST(:sources AS text[])) AS u(i, s) "
    "ON CONFLICT (dead_letter_topic, dead_letter_id) DO {action} RETURNING dead_letter_id"
)


async def replayed_ids(engine: AsyncEngine, settings: Settings) -> dict[str, datetime]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT dead_letter_id, replayed_at FROM dead_letter_replays "
                 "WHERE dead_letter_topic = :topic"),
            {"topic": Topics.from_settings(settings).dead_letter})
        return {row[0]: row[1] for row in rows.all()}


async def replay(engine: AsyncEngine, settings: Settings, letters: Sequence[DeadLetter],
                 force: bool = False) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """Put `letters` back on their source topics; (replayed, skipped as replayed before)."""
    topic = Topics.from_settings(settings).dead_letter
    usable = [letter for letter in letters if letter.source_topic]
    if not usable:
        return [], []
    action = "UPDATE SET replayed_at = now()" if force else "NOTHING"
    publisher = EventPublisher(settings, "dead-letters")
    try:
        async with engine.begin() as conn:
            inserted = await conn.execute(text(_RECORD.text.format(action=action)), {
                "topic": topic, "ids": [d.id for d in usable],
                "sources": [d.source_topic for d in usable]})
            fresh = set(inserted.scalars().all())
            chosen = [d for d in usable if d.id in fresh]
            by_topic: dict[str, list[RawMessage]] = {}
            for letter in chosen:
                by_topic.setdefault(letter.source_topic, []).append(RawMessage(
                    key=letter.key, value=letter.value,
                    headers=[("churnwatch.replayed_from", f"{topic}:{letter.id}".encode())]))
            # Acked before the replays are recorded: a failure here records none of them.
            for source, messages in by_topic.items():
                await publisher.publish_raw(source, messages)
    finally:
        await publisher.stop()
    return chosen, [d for d in usable if d.id not in fresh]


# --- the command ----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="churnwatch dead-letters",
        description="Inspect the dead-letter topic and put dead letters back on their topics.")
    commands = p.add_subparsers(dest="command", required=True)

    def filters(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--since", type=_aware_time, metavar="TIME",
                         help="only those dead-lettered at or after this ISO time (UTC if no zone)")
        sub.add_argument("--last", type=int, metavar="N",
                         help="only the newest N dead letters (before the other filters)")
        sub.add_argument("--reason", help="only those whose reason contains this text (any case)")
        sub.add_argument("--topic", help="only those from this source topic")
        sub.add_argument("--failure", choices=["decode", "too_large", "wrong_topic", "rejected",
                                               "processing"], help="only this kind of failure")

    listing = commands.add_parser("list", help="list dead letters, oldest first")
    filters(listing)
    listing.add_argument("--json", action="store_true", help="one JSON object a line")
    show = commands.add_parser("show", help="one dead letter in full: headers, key and value")
    show.add_argument("id", help="<partition>:<offset> on the dead-letter topic (see list)")
    again = commands.add_parser("replay", help="put dead letters back on their source topics")
    target = again.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", action="append", dest="ids", metavar="ID",
                        help="a dead letter's <partition>:<offset> (repeatable)")
    target.add_argument("--all", action="store_true",
                        help="every dead letter matching the filters")
    filters(again)
    again.add_argument("--force", action="store_true", help="replay again those replayed before")
    again.add_argument("--dry-run", action="store_true", help="say what would be replayed; send nothing")
    return p


def _aware_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _bounds(args: argparse.Namespace) -> Bounds:
    """Only the part of the topic the command needs: an id is read where it is."""
    if args.command == "show":
        return Bounds(ids=[args.id])
    if getattr(args, "ids", None):
        return Bounds(ids=args.ids)
    return Bounds(since=args.since, last=args.last)


def _value_text(value: bytes | None) -> str:
    if value is None:
        return "(no value)"
    try:
        return orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return value.decode("utf-8", "backslashreplace")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    await require_migrated(settings)
    engine = create_engine(settings)
    try:
        letters = await read_dead_letters(settings, bounds=_bounds(args))
        if args.command == "show":
            found = select_letters(letters, ids=[args.id])
            if not found:
                print(f"no dead letter {args.id}", file=sys.stderr)
                return 1
            letter = found[0]
            replays = await replayed_ids(engine, settings)
            print(f"id: {letter.id}")
            print(f"time: {letter.timestamp.isoformat()}")
            if letter.id in replays:
                print(f"replayed: {replays[letter.id].isoformat()}")
            for name, value in sorted(letter.headers.items()):
                print(f"{name}: {value}")
            print(f"key: {letter.key.decode('utf-8', 'backslashreplace') if letter.key else ''}")
            print(f"value ({len(letter.value or b'')} bytes):")
            print(_value_text(letter.value))
            return 0
        chosen = select_letters(letters, ids=getattr(args, "ids", None) or (), reason=args.reason,
                                source_topic=args.topic, failure=args.failure)
        if args.command == "list":
            replays = await replayed_ids(engine, settings)
            for letter in chosen:
                row = letter.summary() | {"replayed": letter.id in replays}
                if args.json:
                    print(orjson.dumps(row).decode())
                else:
                    source = f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
                    mark = " (replayed)" if row["replayed"] else ""
                    print(f"{letter.id:>10}  {letter.timestamp:%Y-%m-%d %H:%M:%S}  {source}  "
                          f"{letter.consumer_group}  {letter.failure or '-'}{mark}  "
                          f"{letter.reason[:120]}")
            if not args.json:
                print(f"{len(chosen)} dead letter(s)")
            return 0
        # replay
        if args.ids:
            missing = sorted(set(args.ids) - {d.id for d in chosen})
            if missing:
                print(f"no dead letter {', '.join(missing)}", file=sys.stderr)
                return 1
        if args.dry_run:
            for letter in chosen:
                print(f"would replay {letter.id} to {letter.source_topic}")
            return 0
        for letter in chosen:
            if not letter.source_topic:
                print(f"skipped {letter.id}: no churnwatch.source_topic header")
        replayed, skipped = await replay(engine, settings, chosen, force=args.force)
        for letter in replayed:
            print(f"replayed {letter.id} to {letter.source_topic}")
        for letter in skipped:
            print(f"skipped {letter.id}: replayed before (--force to replay again)")
        print(f"{len(replayed)} replayed, {len(skipped)} skipped")
        return 0
    finally:
        await engine.dispose()


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    settings = get_settings()
    configure_logging(settings, "dead-letters")
    return asyncio.run(run(args, settings))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
