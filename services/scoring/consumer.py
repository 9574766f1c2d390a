"""Scoring's batch handler: state in memory per owned partition, checkpointed per batch.

Every input topic has the same partition count and is keyed by account id, so an account's
usage, traits, tickets, surveys and overrides all live on partition *i* of their topics, and
the co-partitioning assignor gives partition *i* of every topic to one instance. That
instance keeps the accounts of partition *i* in memory (`PartitionState`) and, in the
consumer's batch transaction, writes the accounts the batch changed, their history and the
partition's watermark next to the offsets; outputs (health scores, signals) are published
before that commit with deterministic ids (see shared/consumer.py for the crash reasoning).

A partition row carries a version bumped by every commit. A batch first locks the rows of
its partitions; a version other than the one this instance last committed means the
partition was written by someone else (a rebalance, a replay): the in-memory copy is
dropped and reloaded under the lock. A batch that fails leaves its partitions unversioned,
so the retry reloads them too: in-memory state never runs ahead of what is durable.
"""

from __future__ import annotations

import hashlib
import heapq
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import orjson
import structlog
from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import metrics, store
from services.scoring.config import Scorecard
from services.scoring.engine import AccountEngine, Cause, Change
from services.scoring.model import DAY, Competitors, UnusableEvent, moment, to_entry
from services.scoring.peers import PeerTable
from services.scoring.risk import serving
from services.scoring.risk import store as risk_store
from services.scoring.risk.features import Snapshot
from services.scoring.risk.weekly import WEEK
from services.scoring.scorecard import effective
from shared.consumer import ConsumedEvent, HandlerResult
from shared.events import Band, Envelope, EventType, RiskSignalPayload, trusted_envelope

log = structlog.get_logger(__name__)
SOURCE = "scoring"


def output_id(kind: str, key: str) -> str:
    """A deterministic id for an output event; hashed when the key would make it too long."""
    candidate = f"{kind}:{key}"
    if len(candidate) <= 200:
        return candidate
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def write_state(encoded: list[Any]) -> bytes:
    """An account's state as stored: compact JSON, deflated (level 1: ~30 µs, about half the bytes)."""
    return zlib.compress(orjson.dumps(encoded), 1)


def read_state(stored: bytes) -> list[Any]:
    decoded: list[Any] = orjson.loads(zlib.decompress(stored))
    return decoded


def read_peers(number: int, stored: bytes | None) -> PeerTable:
    """A partition's stored peer table; an empty one (it refills as accounts are scored) if none
    or of another version."""
    try:
        return PeerTable.decode(None if stored is None else read_state(stored))
    except ValueError as exc:
        log.warning("scoring_peers_reset", partition=number, reason=str(exc))
        return PeerTable()


@dataclass
class PartitionState:
    number: int
    version: int | None  # None: not durable as held (a batch failed): reload before use
    max_event_at: float | None
    accounts: dict[str, AccountEngine] = field(default_factory=dict)
    due: list[tuple[float, str]] = field(default_factory=list)  # heap of (next timer, account)
    scheduled: dict[str, float] = field(default_factory=dict)  # what the heap holds per account
    peers: PeerTable = field(default_factory=PeerTable)  # shared by the partition's accounts

    def schedule(self, engine: AccountEngine) -> None:
        due = engine.next_due()
        if due is not None and self.scheduled.get(engine.account_id) != due:
            self.scheduled[engine.account_id] = due
            heapq.heappush(self.due, (due, engine.account_id))


class Scorer:
    """Turns engines' outputs into envelopes, history rows and account rows. Shared with replay."""

    def __init__(self, card: Scorecard, lateness: float, snapshot_every: float | None = WEEK) -> None:
        self.card = card
        self.lateness = lateness
        self.snapshot_every = snapshot_every
        self.competitors = Competitors(card.competitors)
        self.live_model: serving.LiveModel | None = None  # None: the scorecard serves

    def new_engine(self, account_id: str, peers: PeerTable | None = None) -> AccountEngine:
        engine = AccountEngine(account_id, self.card, self.lateness, self.snapshot_every, peers)
        engine.model_from = self.live_model.since if self.live_model is not None else None
        return engine

    def decode(self, account_id: str, state: bytes, peers: PeerTable | None = None) -> AccountEngine:
        engine = AccountEngine.decode(
            account_id, read_state(state), self.card, self.lateness, self.snapshot_every, peers
        )
        engine.model_from = self.live_model.since if self.live_model is not None else None
        return engine

    def use_model(self, live: serving.LiveModel | None, engines: Iterable[AccountEngine]) -> None:
        """Serve with `live` from now on (None: the scorecard), for new and held engines alike."""
        self.live_model = live
        for engine in engines:
            engine.model_from = live.since if live is not None else None

    def score_with_model(self, engines: Iterable[AccountEngine]) -> int:
        """Evaluate every model score the engines asked for, in one predict_proba call, and the
        explanations of those that changed in one more; returns how many were scored."""
        live = self.live_model
        asked: list[tuple[AccountEngine, Snapshot]] = []
        for engine in engines:
            snapshots, engine.outputs.model_due = engine.outputs.model_due, []
            if live is not None:
                asked += [(engine, snap) for snap in snapshots]
        if live is None or not asked:
            return 0
        scored = serving.score_all(live, [snap for _, snap in asked])
        # Which scores change something (a history row, churn_risk), walking each account's in
        # time order from its record as `apply_model` will; only those are explained.
        last: dict[str, serving.Record | None] = {}
        wanted: list[int] = []
        previous_rows: list[list[float] | None] = []
        threshold, min_change = live.artifact.threshold, self.card.history_min_change
        for i, ((engine, _), found) in enumerate(zip(asked, scored, strict=True)):
            record = last.get(engine.account_id, engine.model_record)
            step = serving.step(record, found, live.version, threshold, min_change)
            if step.changed or step.toggled:
                wanted.append(i)
                previous_rows.append(record.row if record is not None else None)
            last[engine.account_id] = serving.Record(
                live.version, found.at, found.probability, found.score, found.band,
                found.score if step.changed or record is None else record.recorded_score,
                found.band if step.changed or record is None else record.recorded_band,
                serving.kept_row(found.row) if step.changed or record is None else record.row,
                [], step.risk_on, 0,
            )
        explained = dict(
            zip(wanted, serving.explain_all(live, [scored[i] for i in wanted], previous_rows), strict=True)
        )
        for i, ((engine, _), found) in enumerate(zip(asked, scored, strict=True)):
            engine.apply_model(live, found, explained.get(i))
        return len(scored)

    def row(self, engine: AccountEngine, partition: int) -> store.AccountRow:
        live = engine.live
        # The factors in words are read from the state when someone asks (the API), not
        # written on every batch.
        shown = effective(live, self.card) if live.score is not None else None
        computed = (live.score, live.band)
        model_version = None
        model_shown = engine.model_now()
        if model_shown is not None and engine.model_record is not None:
            shown = model_shown
            computed = (engine.model_record.score, engine.model_record.band)
            model_version = engine.model_record.version
        facts = live.facts
        override = None
        if live.override is not None:
            override_id, kind, value, reason, author, set_at, expires_at = live.override
            override = {
                "override_id": override_id,
                "kind": kind,
                "value": value,
                "reason": reason,
                "author": author,
                "set_at": moment(set_at).isoformat(),
                "expires_at": moment(expires_at).isoformat() if expires_at is not None else None,
            }
        due = engine.next_due()
        return store.AccountRow(
            account_id=engine.account_id,
            partition=partition,
            state=write_state(engine.encode()),
            account_name=facts.name,
            segment=live.segment,
            score=shown[0] if shown else None,
            band=shown[1] if shown else None,
            computed_score=computed[0],
            computed_band=computed[1],
            override=override,
            signals=engine.told(),
            renewal_date=facts.renewal_date if isinstance(facts.renewal_date, date) else None,
            mrr=facts.mrr,
            churned=live.churned,
            last_event_at=moment(live.clock) if live.clock is not None else None,
            next_due_at=moment(due) if due is not None else None,
            events_applied=live.events,
            late_events=live.late,
            scorecard_version=self.card.version,
            model_version=model_version,
        )

    @staticmethod
    def envelope(
        cause: Cause, account_id: str, event_id: str, event_type: EventType, payload: dict[str, Any]
    ) -> Envelope:
        # Outputs take the cause's time for both stamps: a replay republishes identical events.
        at = moment(cause.at)
        # Built from values of the right types already (no validation per output).
        return trusted_envelope(event_id, event_type, account_id, cause.user_id, at, at, SOURCE, payload)

    def outputs(
        self,
        engine: AccountEngine,
        *,
        replayed: bool = False,
        id_prefix: str = "",
        risk: risk_store.RiskRows | None = None,
    ) -> tuple[list[dict[str, Any]], list[Envelope]]:
        """History rows and output envelopes of what the engine observed since last asked; its
        risk snapshots and outcomes into `risk`."""
        taken = engine.take_outputs()
        if risk is not None:
            risk.add(engine.account_id, taken.snapshots, taken.outcomes)
        rows = [self.history_row(engine.account_id, change, replayed) for change in taken.changes]
        envelopes = [self.health_event(engine.account_id, change, id_prefix) for change in taken.changes]
        envelopes += [
            self.signal_event(engine.account_id, cause, signal, id_prefix) for cause, signal in taken.signals
        ]
        return rows, envelopes

    @staticmethod
    def history_row(account_id: str, change: Change, replayed: bool) -> dict[str, Any]:
        return {
            "account_id": account_id,
            "event_id": change.cause.event_id,
            "cause_type": change.cause.event_type,
            "occurred_at": moment(change.cause.at),
            "previous_score": change.previous_score,
            "score": change.score,
            "previous_band": change.previous_band,
            "band": change.band,
            "computed_score": change.computed_score,
            "segment": change.segment,
            "override": change.override,
            # Each measure's part before and after is in `contributions`; the words only for the
            # three that pull the score down most (a row per change stays small).
            "factors": [
                f.model_dump(mode="json") for f in [f for f in change.factors if f.value is not None][:3]
            ],
            "contributions": change.contributions,
            "replayed": replayed,
            "model_version": change.model_version,
        }

    def health_event(self, account_id: str, change: Change, id_prefix: str) -> Envelope:
        return self.envelope(
            change.cause,
            account_id,
            output_id("health", id_prefix + change.cause.event_id),
            EventType.HEALTH_SCORE,
            # `HealthScorePayload` as JSON, written directly: one per change, on the hot path.
            {
                "score": float(change.score),
                "band": Band(change.band).value,
                "previous_score": None if change.previous_score is None else float(change.previous_score),
                "previous_band": None if change.previous_band is None else Band(change.previous_band).value,
                "factors": [f.model_dump(mode="json") for f in change.factors],
                "caused_by_event_id": change.cause.event_id,
                "segment": change.segment,
                "computed_score": float(change.computed_score),
                "overridden": change.override,
            },
        )

    def signal_event(
        self, account_id: str, cause: Cause, signal: RiskSignalPayload, id_prefix: str
    ) -> Envelope:
        return self.envelope(
            cause,
            account_id,
            output_id("signal", id_prefix + signal.dedupe_key),
            EventType.RISK_SIGNAL,
            signal.model_dump(mode="json"),
        )


def snapshot_every(days: float) -> float | None:
    """`CHURNWATCH_SCORING_SNAPSHOT_EVERY_DAYS` as seconds; 0 turns risk snapshots off."""
    return days * DAY if days > 0 else None


class ModelSource(Protocol):
    """Where the handler finds the model to serve with (the model watch): None, the scorecard."""

    @property
    def current(self) -> serving.LiveModel | None: ...


class ScoringHandler:
    def __init__(
        self,
        card: Scorecard,
        lateness: float,
        snapshot_every: float | None = WEEK,
        models: ModelSource | None = None,
    ) -> None:
        self.scorer = Scorer(card, lateness, snapshot_every)
        self.models = models
        self.lateness = lateness
        self.partitions: dict[int, PartitionState] = {}

    # --- rebalance hooks (the batch in flight is durable when these run) ------------------------

    def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for number in {tp.partition for tp in revoked}:
            if self.partitions.pop(number, None) is not None:
                log.info("scoring_partition_released", partition=number)
        metrics.ACCOUNTS_IN_MEMORY.set(sum(len(p.accounts) for p in self.partitions.values()))

    def partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Loaded lazily, under the partition's lock, by the first batch that needs it.
        log.info("scoring_partitions_assigned", partitions=sorted({tp.partition for tp in assigned}))

    # --- one batch --------------------------------------------------------------------------

    async def __call__(self, session: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
        result = HandlerResult()
        live = self.models.current if self.models is not None else None
        if live is not self.scorer.live_model:
            # Between batches only: a batch is scored by one model throughout.
            self.scorer.use_model(live, (e for p in self.partitions.values() for e in p.accounts.values()))
            log.info("scoring_model_serving", version=live.version if live else None)
        numbers = sorted({c.partition for c in events})
        locked = await store.lock_partitions(session, numbers)
        for number in numbers:
            await self._ensure_loaded(session, number, locked[number])
            # From here this copy runs ahead of the database until the batch commits: should the
            # batch fail anywhere (a value the database refuses, then retried in pieces), the
            # next batch reloads the partition rather than build on events that rolled back.
            self.partitions[number].version = None
        unattributed: Counter[str] = Counter()
        late = 0
        touched: dict[str, tuple[PartitionState, AccountEngine]] = {}
        # Event-time order within the batch: fewer re-folds when topics interleave.
        for consumed in sorted(events, key=lambda c: c.envelope.occurred_at):
            event = consumed.envelope
            account_id = event.account_id
            if account_id is None:
                unattributed[consumed.topic] += 1
                continue
            try:
                entry = to_entry(event, self.scorer.card, self.scorer.competitors)
            except UnusableEvent as exc:
                result.rejected.append((consumed, str(exc)))
                continue
            if entry is None:
                continue
            partition = self.partitions[consumed.partition]
            engine = partition.accounts.get(account_id)
            if engine is None:
                engine = partition.accounts[account_id] = self.scorer.new_engine(account_id, partition.peers)
            before = engine.late_events
            engine.add(entry, Cause(event.event_id, event.type.value, entry.t, event.user_id))
            late += engine.late_events - before
            touched[account_id] = (partition, engine)
            if partition.max_event_at is None or entry.t > partition.max_event_at:
                partition.max_event_at = entry.t
        ticked = self._fire_timers(numbers, touched)
        started = time.perf_counter()
        model_scored = self.scorer.score_with_model(engine for _, engine in touched.values())
        if model_scored:
            metrics.MODEL_SECONDS.observe(time.perf_counter() - started)

        history: list[dict[str, Any]] = []
        rows: list[store.AccountRow] = []
        risk = risk_store.RiskRows.empty()
        for partition, engine in touched.values():
            changes, outputs = self.scorer.outputs(engine, risk=risk)
            history += changes
            result.outputs += outputs
            rows.append(self.scorer.row(engine, partition.number))
            partition.schedule(engine)
        await store.save_accounts(session, rows)
        await store.record_changes(session, history)
        await risk_store.save(session, risk)
        versions = {
            n: store.PartitionRow(
                locked[n].version + 1,
                self.partitions[n].max_event_at,
                write_state(self.partitions[n].peers.encode()),
            )
            for n in numbers
        }
        await store.save_partitions(session, versions)

        def committed() -> None:
            for number, row in versions.items():
                if number in self.partitions:
                    self.partitions[number].version = row.version
            for topic, count in unattributed.items():
                metrics.UNATTRIBUTED_EVENTS.labels(topic).inc(count)
            metrics.LATE_EVENTS.inc(late)
            metrics.TIMERS_FIRED.inc(ticked)
            metrics.MODEL_SCORES.inc(model_scored)
            for change in history:
                metrics.SCORE_CHANGES.labels(change["band"]).inc()
            for output in result.outputs:
                if output.type is EventType.RISK_SIGNAL:
                    metrics.SIGNALS.labels(output.payload["signal_type"], output.payload["status"]).inc()
            metrics.ACCOUNTS_IN_MEMORY.set(sum(len(p.accounts) for p in self.partitions.values()))

        result.after_commit.append(committed)
        return result

    async def _ensure_loaded(self, session: AsyncSession, number: int, row: store.PartitionRow) -> None:
        held = self.partitions.get(number)
        if held is not None and held.version == row.version:
            return
        started = time.perf_counter()
        partition = PartitionState(number, row.version, row.max_event_at, peers=read_peers(number, row.peers))
        for account_id, state in await store.load_partition(session, number):
            engine = self.scorer.decode(account_id, state, partition.peers)
            partition.accounts[account_id] = engine
            partition.schedule(engine)
        self.partitions[number] = partition
        metrics.PARTITION_LOADS.inc()
        log.info(
            "scoring_partition_loaded",
            partition=number,
            accounts=len(partition.accounts),
            version=row.version,
            seconds=round(time.perf_counter() - started, 3),
        )

    def _fire_timers(
        self, numbers: list[int], touched: dict[str, tuple[PartitionState, AccountEngine]]
    ) -> int:
        """Fire every timer the partitions' watermarks (max event time - lateness) have passed."""
        fired = 0
        for number in numbers:
            partition = self.partitions[number]
            if partition.max_event_at is None:
                continue
            watermark = partition.max_event_at - self.lateness
            for _, engine in (t for t in touched.values() if t[0] is partition):
                due = engine.next_due()
                if due is not None and due <= watermark:
                    engine.advance(watermark)
                    fired += 1
            heap = partition.due
            while heap and heap[0][0] <= watermark:
                due, account_id = heapq.heappop(heap)
                waiting = partition.accounts.get(account_id)
                if waiting is None or partition.scheduled.get(account_id) != due:
                    continue  # superseded: the engine scheduled a newer timer
                del partition.scheduled[account_id]
                waiting.advance(watermark)
                fired += 1
                touched[account_id] = (partition, waiting)
        return fired
