"""Re-scoring from stored events: one account or every account, e.g. after a scorecard change.

Kafka is scoring's event store (the input topics keep `CHURNWATCH_SCORING_INPUT_RETENTION_DAYS`
of events). A replay, under the lock of the partitions it rebuilds (live scoring pauses on
those partitions until it commits, then reloads them):
  1. reads the input topics of those partitions from the earliest retained event up to the
     offsets live scoring has committed, so the rebuilt state covers exactly what the live
     state covered, and drops duplicate event ids as the live consumer does;
  2. folds each account's events in event-time order with the current scorecard, with the
     partition watermark firing daily ticks as live (no event is late in a replay);
  3. replaces the accounts' state and history (history rows are marked `replayed`);
  4. tells downstream only the difference between the signals that were open and those that
     hold now, marked `evidence.replayed` (nothing about the past: no alert for history), plus
     one health-score event per account whose shown score or band changed; through the
     scoring outbox, so nothing leaves unless the replay committed.

With a churn-risk model active, history is re-scored with it causally, as live scoring scores:
a daily tick at event time t is scored by the model only if t is at or after the model's
calibrate cut (`fitted_until`), the moments before by the scorecard. A model this code cannot
load is named in the report and the scorecard re-scores everything.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.scoring import signals, store
from services.scoring.config import Scorecard
from services.scoring.consumer import Scorer, output_id, read_peers, read_state, snapshot_every, write_state
from services.scoring.engine import AccountEngine, Cause
from services.scoring.model import UnusableEvent, moment, to_entry
from services.scoring.model_watch import load_version
from services.scoring.peers import PeerTable
from services.scoring.risk import store as risk_store
from services.scoring.risk.artifact import ArtifactMismatch
from services.scoring.risk.serving import LiveModel
from services.scoring.scorecard import effective, factors
from services.scoring.topics import input_topics
from shared.consumer import consumer_offsets, drain_outbox, stage_outputs
from shared.events import Envelope, EventType, HealthScorePayload, InvalidEvent, decode
from shared.publisher import EventPublisher
from shared.settings import Settings
from shared.topics import Topics

GROUP_ID = "churnwatch-scoring"


def partition_of(account_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives an account's events (murmur2 of the key)."""
    hashed: int = murmur2(account_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


@dataclass
class ReplayReport:
    partitions: list[int]
    events_read: int = 0
    duplicates: int = 0
    unusable: int = 0
    accounts: int = 0
    score_changed: int = 0
    band_changed: int = 0
    raised: list[str] = field(default_factory=list)
    cleared: list[str] = field(default_factory=list)
    snapshots: int = 0  # risk snapshots (re)written
    model: str = "scorecard"  # what re-scored: "model vN (from <cut>)" or the scorecard
    model_scores: int = 0
    dry_run: bool = False

    def lines(self) -> list[str]:
        mode = " (dry run: nothing written or published)" if self.dry_run else ""
        return [
            f"replayed partitions {self.partitions}{mode}",
            f"events read {self.events_read}, duplicates dropped {self.duplicates}, unusable {self.unusable}",
            f"accounts re-scored {self.accounts}: shown score changed {self.score_changed}, "
            f"band changed {self.band_changed}",
            f"risk snapshots written {self.snapshots}",
            f"scored with {self.model}: {self.model_scores} model scores",
            f"signals raised now {len(self.raised)}: {', '.join(self.raised[:20])}",
            f"signals cleared now {len(self.cleared)}: {', '.join(self.cleared[:20])}",
        ]


async def read_events(
    settings: Settings, ends: dict[TopicPartition, int], account_id: str | None
) -> tuple[list[Envelope], int]:
    """Every event on the given topic-partitions from the earliest retained up to `ends`."""
    wanted = {tp: end for tp, end in ends.items() if end > 0}
    if not wanted:
        return [], 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await consumer.start()
    events: list[Envelope] = []
    unusable = 0
    try:
        consumer.assign(list(wanted))
        await consumer.seek_to_beginning(*wanted)
        remaining = set(wanted)
        while remaining:
            for tp in list(remaining):
                if await consumer.position(tp) >= wanted[tp]:
                    remaining.discard(tp)
                    consumer.pause(tp)
            if not remaining:
                break
            batch = await consumer.getmany(timeout_ms=500, max_records=5_000)
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= wanted[tp]:
                        continue
                    try:
                        event = decode(record.value)
                    except InvalidEvent:
                        unusable += 1
                        continue
                    if event.account_id is None or (
                        account_id is not None and event.account_id != account_id
                    ):
                        continue
                    events.append(event)
    finally:
        await consumer.stop()
    return events, unusable


async def publish_staged(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Publish what a replay staged (live scoring's relay would too; this covers none running)."""
    publisher = EventPublisher(settings, "scoring-replay")
    try:
        while await drain_outbox(sessions, publisher, GROUP_ID, "scoring-replay"):
            pass
    finally:
        await publisher.stop()


class Replayer:
    def __init__(
        self, settings: Settings, card: Scorecard, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        self.settings = settings
        self.card = card
        self.sessions = sessions
        self.scorer = Scorer(
            card, settings.scoring_lateness_seconds, snapshot_every(settings.scoring_snapshot_every_days)
        )
        self.lateness = settings.scoring_lateness_seconds

    async def run(self, account_id: str | None, dry_run: bool = False) -> ReplayReport:
        count = self.settings.topic_partitions
        numbers = [partition_of(account_id, count)] if account_id is not None else list(range(count))
        report = ReplayReport(numbers, dry_run=dry_run)
        async with self.sessions() as session, session.begin():
            locked = await store.lock_partitions(session, numbers)
            ends = await self._committed_offsets(session, numbers)
            events, report.unusable = await read_events(self.settings, ends, account_id)
            self.scorer.live_model, report.model = await self._active_model(session)
            report.events_read = len(events)
            # A whole partition rebuilds its peers from its events; one account is placed
            # against its partition's current peers (the others are not re-read).
            peers = {
                n: PeerTable() if account_id is None else read_peers(n, locked[n].peers) for n in numbers
            }
            engines = self._fold(events, numbers, report, peers)
            report.model_scores = self.scorer.score_with_model(engines.values())
            stored = await self._stored(session, list(engines))
            risk = risk_store.RiskRows.empty()
            outputs, history, rows = self._reconcile(engines, stored, report, risk)
            report.snapshots = len(risk.snapshots)
            if dry_run:
                await session.rollback()
                return report
            replayed = list(engines)
            if replayed:
                await session.execute(
                    delete(store.score_changes).where(store.score_changes.c.account_id.in_(replayed))
                )
            await store.save_accounts(session, rows)
            await store.record_changes(session, history)
            await risk_store.save(session, risk)
            await stage_outputs(session, Topics.from_settings(self.settings), GROUP_ID, outputs)
            await store.save_partitions(
                session,
                {
                    n: store.PartitionRow(
                        locked[n].version + 1,
                        self._max_event.get(n, locked[n].max_event_at),
                        write_state(peers[n].encode()),
                    )
                    for n in numbers
                },
            )
        return report

    async def _active_model(self, session: AsyncSession) -> tuple[LiveModel | None, str]:
        conn = await session.connection()
        version = await risk_store.active_version(conn)
        if version is None:
            return None, "scorecard"
        try:
            live = await load_version(conn, version)
        except ArtifactMismatch as exc:
            return None, f"scorecard (model v{version} refused: {exc})"
        return live, f"model v{version} (from {moment(live.since).isoformat()})"

    async def _committed_offsets(
        self, session: AsyncSession, numbers: Sequence[int]
    ) -> dict[TopicPartition, int]:
        rows = await session.execute(
            select(
                consumer_offsets.c.topic, consumer_offsets.c.partition, consumer_offsets.c.next_offset
            ).where(consumer_offsets.c.consumer_group == GROUP_ID)
        )
        topics = set(input_topics(self.settings))
        return {TopicPartition(t, p): o for t, p, o in rows.all() if t in topics and p in numbers}

    def _fold(
        self,
        events: list[Envelope],
        numbers: list[int],
        report: ReplayReport,
        peers: dict[int, PeerTable],
    ) -> dict[str, AccountEngine]:
        """Events in event-time order, with the partition watermark firing timers as live does."""
        seen: set[str] = set()
        engines: dict[str, AccountEngine] = {}
        self._partition: dict[str, int] = {}
        self._max_event: dict[int, float] = {}
        due: dict[int, list[tuple[float, str]]] = {n: [] for n in numbers}
        count = self.settings.topic_partitions
        for event in sorted(events, key=lambda e: (e.occurred_at, e.event_id)):
            if event.event_id in seen:
                report.duplicates += 1
                continue
            seen.add(event.event_id)
            try:
                entry = to_entry(event, self.card, self.scorer.competitors)
            except UnusableEvent:
                report.unusable += 1
                continue
            if entry is None:
                continue
            assert event.account_id is not None
            number = partition_of(event.account_id, count)
            engine = engines.get(event.account_id)
            if engine is None:
                engine = engines[event.account_id] = self.scorer.new_engine(event.account_id, peers[number])
                self._partition[event.account_id] = number
            engine.add(entry, Cause(event.event_id, event.type.value, entry.t, event.user_id))
            self._max_event[number] = max(self._max_event.get(number, entry.t), entry.t)
            heap = due[number]
            scheduled = engine.next_due()
            if scheduled is not None:
                heapq.heappush(heap, (scheduled, event.account_id))
            watermark = self._max_event[number] - self.lateness
            while heap and heap[0][0] <= watermark:
                at, account = heapq.heappop(heap)
                waiting = engines[account]
                if waiting.next_due() == at:
                    waiting.advance(watermark)
                    following = waiting.next_due()
                    if following is not None:
                        heapq.heappush(heap, (following, account))
        report.accounts = len(engines)
        return engines

    async def _stored(self, session: AsyncSession, accounts: list[str]) -> dict[str, dict[str, Any]]:
        if not accounts:
            return {}
        rows = await session.execute(
            select(
                store.account_health.c.account_id,
                store.account_health.c.state,
                store.account_health.c.score,
                store.account_health.c.band,
            ).where(store.account_health.c.account_id.in_(accounts))
        )
        stored = {}
        for account, state, score, band in rows.all():
            raw = read_state(bytes(state))
            mine = f":{account}:"
            emitted = {t: [k.replace(":~:", mine, 1) for k in keys] for t, keys in raw[5].items()}
            silent = {k.replace(":~:", mine, 1) for k in raw[9]} if len(raw) > 9 else set()
            told = {t: [k for k in keys if k not in silent] for t, keys in emitted.items()}
            stored[account] = {"told": {t: k for t, k in told.items() if k}, "score": score, "band": band}
        return stored

    def _reconcile(
        self,
        engines: dict[str, AccountEngine],
        stored: dict[str, dict[str, Any]],
        report: ReplayReport,
        risk: risk_store.RiskRows,
    ) -> tuple[list[Envelope], list[dict[str, Any]], list[store.AccountRow]]:
        outputs: list[Envelope] = []
        history: list[dict[str, Any]] = []
        rows: list[store.AccountRow] = []
        live_model = self.scorer.live_model
        prefix = f"replay:{self.card.version}:" + (f"m{live_model.version}:" if live_model else "")
        for account, engine in engines.items():
            taken = engine.take_outputs()
            changes = taken.changes  # the past's signals are not told again
            risk.add(account, taken.snapshots, taken.outcomes)
            history += [self.scorer.history_row(account, change, replayed=True) for change in changes]
            rows.append(self.scorer.row(engine, self._partition[account]))
            live = engine.live
            before = stored.get(account, {"told": {}, "score": None, "band": None})
            model_shown = engine.model_now()
            shown: tuple[float | None, str | None] = (
                model_shown if model_shown is not None else effective(live, self.card)
            )
            if live.clock is None or shown[0] is None or shown[1] is None:
                continue
            cause = Cause(f"{prefix}{account}", "replay", live.clock)
            shown_factors = engine.model_factors() if model_shown is not None else factors(live, self.card)
            previous = (before["score"], before["band"])
            if shown[0] != before["score"]:
                report.score_changed += 1
            if shown[1] != before["band"]:
                report.band_changed += 1
            if shown != previous:
                outputs.append(
                    self.scorer.envelope(
                        cause,
                        account,
                        output_id("health", f"{prefix}{account}:{int(live.clock)}"),
                        EventType.HEALTH_SCORE,
                        HealthScorePayload(
                            score=shown[0],
                            band=shown[1],
                            previous_score=before["score"],
                            previous_band=before["band"],
                            factors=shown_factors,
                            caused_by_event_id=cause.event_id,
                            segment=live.segment,
                            computed_score=live.score,
                            overridden=live.override is not None,
                        ).model_dump(mode="json"),
                    )
                )
            told_now = {t: [k for k in keys if k not in engine.silent] for t, keys in engine.emitted.items()}
            for signal_type, keys in told_now.items():
                for key in keys:
                    if key in before["told"].get(signal_type, []):
                        continue
                    payload = signals.raised(
                        signal_type, key, live, self.card, account, shown, previous, shown_factors
                    )
                    payload.evidence |= {"replayed": True, "scorecard_version": self.card.version}
                    outputs.append(self.scorer.signal_event(account, cause, payload, ""))
                    report.raised.append(key)
            for signal_type, keys in before["told"].items():
                if told_now.get(signal_type):
                    continue
                payload = signals.cleared(
                    signal_type, keys[-1], live, account, shown, previous, shown_factors
                )
                payload.evidence |= {"replayed": True, "scorecard_version": self.card.version}
                outputs.append(self.scorer.signal_event(account, cause, payload, ""))
                report.cleared.append(f"{keys[-1]}:cleared")
        return outputs, history, rows
