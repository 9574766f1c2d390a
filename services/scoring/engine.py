"""One account's timeline on event time: exact within the lateness bound, whatever the arrival order.

The account keeps a *settled* model (every entry up to `settled_until`, folded in order) and
a short *pending* list of newer entries. The live model is settled + pending folded in
(time, tick-last, id) order, so it is a pure function of the set of entries seen:
  * in order (the common case) an entry is folded into the live model directly;
  * out of order but newer than `settled_until`, it is inserted and the live model is
    re-folded from the settled one (a few entries, at most `MAX_PENDING`);
  * older than `settled_until` (later than the lateness bound allows), it is applied
    best-effort to both models and counted (`Model.late`): the order-independent parts of the
    state (counters, latest answers, tickets, traits) stay exact; only the path (band,
    episodes) may differ from an in-order run.
Pending entries settle once the account's event time has moved `lateness` past them: the
live model at that moment (kept as a candidate snapshot) becomes the settled one, so
settling costs one copy, never a second fold.

Time-driven rules (a quiet account's recency, renewals, onboarding at day 30, overrides
lapsing) need time to pass without events: daily *ticks* at a fixed per-account second of
the UTC day, and a tick at an override's expiry, join the timeline as entries. They fire when
the account's own events pass them, or when the partition's watermark does (`advance`), and
sort after events at the same instant. Nothing here reads the wall clock.

Weekly risk snapshots (`risk.weekly`) fall on a fixed grid of event time. The snapshot at grid
moment W is the account's features from every entry before W (and the ticks up to W): it is
taken when the account's time first reaches W, by an event or by the watermark, which is
where every entry before W is in the live model (later arrivals are earlier in time). An
entry arriving out of order but within the lateness bound before a snapshot already taken
re-takes it (the rare re-fold of settled + pending up to W), so the snapshots, like the
model, depend on the set of entries, not their arrival order; one later than the bound
leaves the snapshot as taken. The cost per event is one comparison: the work happens on
week crossings only.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from services.scoring import signals
from services.scoring.config import Scorecard
from services.scoring.model import (
    DAY,
    OVERRIDE,
    TICK,
    USAGE,
    USAGE_BASELINE_HALF_LIFE,
    Entry,
    Model,
    apply,
    decayed,
    moment,
    stable_hash,
    tick,
)
from services.scoring.peers import PeerTable
from services.scoring.risk import serving
from services.scoring.risk.features import Snapshot, snapshot
from services.scoring.risk.weekly import WEEK, TakenSnapshot, next_moment
from services.scoring.scorecard import (
    effective,
    evaluate,
    factors,
    plan_of,
    raw_band,
    segment_for,
    top_measure,
)
from shared.events import Factor, RiskSignalPayload

# Every loop over time is bounded: a gap between entries longer than MAX_TICKED_GAP_DAYS fires
# only the GAP_EDGE_DAYS daily ticks after its start and before its end. Each time-driven rule
# looks back or ahead far less than GAP_EDGE_DAYS (renewals 90 days, surveys 90, history 28),
# so the middle ticks find the account settled; gaps shorter than the door's event-time window
# (5 years by default) are ticked in full, so results for normal timelines are unchanged.
MAX_TICKED_GAP_DAYS = 2_000
GAP_EDGE_DAYS = 1_000
MAX_PENDING = 256  # beyond this many re-orderable entries an account settles early
STATE_VERSION = 2
# With a model live these follow its band, through churn_risk: the scorecard's would contradict it.
MODEL_REPLACES = frozenset({"entered_red", "band_dropped", "score_drop"})


@dataclass(frozen=True)
class Cause:
    event_id: str
    event_type: str
    at: float
    user_id: str | None = None


@dataclass
class Change:
    """A meaningful change of the shown health: one history row and one health-score event."""

    cause: Cause
    previous_score: float | None
    previous_band: str | None
    score: float
    band: str
    computed_score: float
    segment: str
    factors: list[Factor]
    contributions: list[dict[str, Any]]
    override: bool
    model_version: int | None = None  # the churn-risk model that produced the score, None: scorecard


@dataclass
class Outputs:
    changes: list[Change] = field(default_factory=list)
    signals: list[tuple[Cause, RiskSignalPayload]] = field(default_factory=list)
    snapshots: list[TakenSnapshot] = field(default_factory=list)
    outcomes: list[tuple[str, float]] = field(default_factory=list)  # ("churned"|"renewed", at)
    model_due: list[Snapshot] = field(default_factory=list)  # moments the live model is to score


def tick_offset(account_id: str) -> float:
    """The second of the UTC day at which the account's daily tick falls: spread, not all at midnight."""
    return float(stable_hash(account_id) % int(DAY))


class AccountEngine:
    def __init__(
        self,
        account_id: str,
        card: Scorecard,
        lateness: float,
        snapshot_every: float | None = WEEK,
        peers: PeerTable | None = None,
    ) -> None:
        self.account_id = account_id
        self.snapshot_every = snapshot_every  # None: no risk snapshots
        self.snapshot_until: float | None = None  # the last grid moment reached
        self._outcomes_told: tuple[float | None, float | None] = (None, None)
        self.card = card
        self.lateness = lateness
        # The partition's peers, shared by its accounts; None: no peer comparison (left out).
        self.peers = peers
        self.offset = tick_offset(account_id)
        self.settled = Model()
        self.settled_until: float | None = None
        self.pending: list[Entry] = []
        self.ticked_until: float | None = None  # the last daily tick fired
        self.first: float | None = None  # the earliest entry time seen: daily ticks start after it
        self.timers: list[float] = []  # override expiries still to fire
        self.silent: list[str] = []  # raised keys folded into a more specific signal, never told
        self.emitted: dict[str, list[str]] = {}
        # last recorded [score, band, top measure, segment, override id, {measure: contribution}]
        self.recorded: list[Any] | None = None
        self.live = Model()
        self._ids: set[int] = set()
        self._candidate: Model | None = None
        self._candidate_len = 0
        self.outputs = Outputs()
        self.late_events = 0  # arrivals beyond the lateness bound since load (for metrics)
        # The live model's calibrate cut (set by the scorer; None: no model live): daily ticks at
        # or after it ask the model for a score (`outputs.model_due`), evaluated per batch.
        self.model_from: float | None = None
        self.model_since: float | None = None  # the first moment a model was asked: it governs since
        self.model_record: serving.Record | None = None
        self.duplicates = 0

    # --- persistence ------------------------------------------------------------------------

    def encode(self) -> list[Any]:
        # Signal keys carry the account id; stored without it ("~") they take half the bytes.
        mine = f":{self.account_id}:"
        emitted = {t: [k.replace(mine, ":~:", 1) for k in keys] for t, keys in self.emitted.items()}
        return [
            STATE_VERSION,
            self.settled.encode(),
            [e.encode() for e in self.pending],
            self.settled_until,
            self.ticked_until,
            emitted,
            self.recorded,
            self.first,
            self.timers,
            [k.replace(mine, ":~:", 1) for k in self.silent],
            self.snapshot_until,
            self.model_since,
            self.model_record.encode() if self.model_record is not None else None,
        ]

    @classmethod
    def decode(
        cls,
        account_id: str,
        raw: list[Any],
        card: Scorecard,
        lateness: float,
        snapshot_every: float | None = WEEK,
        peers: PeerTable | None = None,
    ) -> AccountEngine:
        engine = cls(account_id, card, lateness, snapshot_every, peers)
        # Written before risk snapshots existed: no snapshot of the past is taken (replay for those).
        snapshot_until = raw[10] if len(raw) > 10 else None
        (
            version,
            settled,
            pending,
            engine.settled_until,
            engine.ticked_until,
            engine.emitted,
            engine.recorded,
            engine.first,
            engine.timers,
            silent,
        ) = raw[:10]
        if version != STATE_VERSION:
            raise ValueError(f"account state version {version} is not {STATE_VERSION}: replay to rebuild")
        mine = f":{account_id}:"
        engine.emitted = {t: [k.replace(":~:", mine, 1) for k in keys] for t, keys in engine.emitted.items()}
        engine.silent = [k.replace(":~:", mine, 1) for k in silent]
        engine.settled = Model.decode(settled)
        engine.pending = [Entry.decode(e) for e in pending]
        engine._ids = {e.id for e in engine.pending if e.kind != TICK}
        engine._refold()
        live = engine.live
        if snapshot_until is None and live.clock is not None and snapshot_every is not None:
            snapshot_until = next_moment(live.clock, snapshot_every) - snapshot_every
        engine.snapshot_until = snapshot_until
        if len(raw) > 12:
            engine.model_since = raw[11]
            engine.model_record = serving.Record.decode(raw[12]) if raw[12] is not None else None
        engine._outcomes_told = (live.churned_at, live.renewed_at)
        return engine

    # --- time -------------------------------------------------------------------------------

    def _next_daily(self, after: float) -> float:
        day_start = (after - self.offset) // DAY * DAY + self.offset
        return day_start + DAY

    def _daily_ticks(self, first: float, last: float) -> Iterator[float]:
        """The daily ticks from `first` (one) through `last`, a long gap's quiet middle left out."""
        count = int((last - first) // DAY) + 1
        if count <= MAX_TICKED_GAP_DAYS:
            yield from (first + day * DAY for day in range(count))
            return
        yield from (first + day * DAY for day in range(GAP_EDGE_DAYS))
        yield from (first + day * DAY for day in range(count - GAP_EDGE_DAYS, count))

    def next_due(self) -> float | None:
        """The event time of the next timer: the daily tick, or an override's expiry."""
        if self.ticked_until is None:
            return None
        due = self._next_daily(self.ticked_until)
        return min(due, self.timers[0]) if self.timers else due

    def _fire_until(self, until: float) -> None:
        """Fire the timers through `until`, taking each risk snapshot the way passes."""
        every = self.snapshot_every
        if every is not None and self.first is not None:
            since = self.snapshot_until or self.first
            # As with ticks, a gap longer than MAX_TICKED_GAP_DAYS is snapshotted only near its edges.
            quiet = (since + GAP_EDGE_DAYS * DAY, until - GAP_EDGE_DAYS * DAY)
            long_gap = until - since > MAX_TICKED_GAP_DAYS * DAY
            while (due := next_moment(self.snapshot_until or self.first, every)) <= until:
                if long_gap and quiet[0] < due < quiet[1]:
                    self.snapshot_until = next_moment(quiet[1], every) - every
                    continue
                # Ticks before W only: entries at W itself belong to the next week.
                self._fire_ticks(due - 0.5)
                self.snapshot_until = due
                self._take_snapshot(self.live, due)
        self._fire_ticks(until)

    def _fire_ticks(self, until: float) -> None:
        if self.ticked_until is not None and until - self.ticked_until > MAX_TICKED_GAP_DAYS * DAY:
            self._fire_through(self.ticked_until + GAP_EDGE_DAYS * DAY)
            resume = self._next_daily(until - GAP_EDGE_DAYS * DAY) - DAY
            while self.timers and self.timers[0] <= resume:  # an expiry is never skipped
                self._tick(self.timers.pop(0))
            self.ticked_until = resume
        self._fire_through(until)

    def _fire_through(self, until: float) -> None:
        while True:
            due = self.next_due()
            if due is None or due > until:
                return
            if self.timers and self.timers[0] == due:
                self.timers.pop(0)
            else:
                self.ticked_until = due
            self._tick(due)

    def _tick(self, at: float) -> None:
        if self._insert(tick(at)):
            self._observe(Cause(f"tick:{self.account_id}:{int(at)}", "tick", at))
        if self.model_from is not None and at >= self.model_from and not self.live.churned:
            if self.model_since is None:
                self.model_since = at
            self.outputs.model_due.append(snapshot(self.live, at))

    def _risk_told(self) -> bool:
        return "churn_risk" not in self.card.signals.disabled

    def governed(self, at: float) -> bool:
        """Whether the shown health at `at` is the model's (else the scorecard's)."""
        return self.model_from is not None and self.model_since is not None and at >= self.model_since

    def shown_model(self) -> tuple[float, str] | None:
        """The model's score and band as shown: a CSM's override wins, as over the scorecard."""
        record = self.model_record
        if record is None or self.model_from is None:
            return None
        override = self.live.override
        if override is not None:
            kind, value = override[1], override[2]
            if kind == "score":
                return float(value), raw_band(float(value), self.card.bands)
            if kind == "band":
                return record.score, str(value)
        return record.score, record.band

    def model_now(self) -> tuple[float, str] | None:
        """The model's shown score and band if the model governs the account now, else None."""
        clock = self.live.clock
        return self.shown_model() if clock is not None and self.governed(clock) else None

    def model_factors(self) -> list[Factor]:
        record = self.model_record
        return [] if record is None else model_factors(record.parts, record.probability)

    def apply_model(
        self, live: serving.LiveModel, scored: serving.Scored, explained: serving.Explained | None
    ) -> None:
        """One model score of this account, in time order: the record, a history change when it
        moved, and churn_risk raised or cleared (with hysteresis)."""
        last = self.model_record
        threshold = live.artifact.threshold
        found = serving.step(last, scored, live.version, threshold, self.card.history_min_change)
        record = serving.Record.after(last, scored, found, live.version, explained)
        before = self.shown_model()
        if before is None and self.recorded is not None:
            before = (self.recorded[0], self.recorded[1])
        self.model_record = record
        if not (found.changed or found.toggled):
            return
        cause = Cause(f"risk:{self.account_id}:{int(scored.at)}", "risk_model", scored.at)
        shown = self.shown_model()
        assert shown is not None
        shown_factors = self.model_factors()
        previous = (before[0], before[1]) if before is not None else (None, None)
        if explained is not None and not found.changed:
            # churn_risk cleared without a recorded change: its evidence is this score's own
            shown_factors = model_factors(explained.parts, scored.probability)
        if found.changed:
            earlier = {c: v for c, v, _ in last.parts} if last is not None else {}
            now = {c: v for c, v, _ in record.parts}
            self.outputs.changes.append(
                Change(
                    cause=cause,
                    previous_score=previous[0],
                    previous_band=previous[1],
                    score=shown[0],
                    band=shown[1],
                    computed_score=scored.score,
                    segment=self.live.segment or "",
                    factors=shown_factors,
                    contributions=[
                        {"measure": c, "before": earlier.get(c), "after": now.get(c)}
                        for c in dict.fromkeys([*now, *earlier])
                    ],
                    override=self.live.override is not None,
                    model_version=live.version,
                )
            )
        if found.toggled and self._risk_told():
            key = f"churn_risk:{self.account_id}:{record.episode}"
            if found.risk_on:
                payload = signals.churn_risk(
                    key, self.live, self.account_id, shown, previous, shown_factors,
                    scored.probability, live.artifact.threshold, live.version,
                )
                self.emitted["churn_risk"] = [key]
            else:
                payload = signals.cleared(
                    "churn_risk", key, self.live, self.account_id, shown, previous, shown_factors
                )
                self.emitted.pop("churn_risk", None)
            self.outputs.signals.append((cause, payload))

    def advance(self, watermark: float) -> None:
        """Fire the timers the partition's watermark has passed."""
        self._fire_until(watermark)

    # --- events -----------------------------------------------------------------------------

    def add(self, entry: Entry, cause: Cause) -> bool:
        """Apply one event's entry; False if it was a duplicate of a pending entry.

        Which ticks exist depends only on the entries' times, never on arrival order: every
        daily tick after the account's earliest entry up to the latest time reached, and one
        at each override expiry an entry asked for.
        """
        if entry.id in self._ids:
            self.duplicates += 1
            return False
        t = entry.t
        if self.first is None:
            self.first = t
            self.ticked_until = self._next_daily(t) - DAY
        else:
            self._fire_until(t)
            if t < self.first:
                # An earlier entry than any seen: the daily ticks between it and the old
                # earliest belong to the timeline too (an in-order run fired them).
                old_first, self.first = self.first, t
                for earlier in self._daily_ticks(self._next_daily(t), old_first):
                    self._tick(earlier)
        if self._insert(entry):
            self._observe(cause)
        if entry.kind == OVERRIDE and entry.data[0] == "set" and entry.data[7] is not None:
            expiry = float(entry.data[7])
            clock = self.live.clock or expiry
            if expiry <= clock:
                self._tick(expiry)
            elif expiry not in self.timers:
                bisect.insort(self.timers, expiry)
        return True

    def _take_snapshot(self, model: Model, at: float) -> None:
        if model.churned:
            return  # nothing left to predict
        shown, _ = effective(model, self.card)
        self.outputs.snapshots.append(
            TakenSnapshot(snapshot(model, at), shown, decayed(model.u_base, at, USAGE_BASELINE_HALF_LIFE))
        )

    def _retake_snapshots(self, since: float) -> None:
        """Re-take the snapshots taken after `since` from settled + pending: an entry before them
        arrived out of order (within the lateness bound, so after `settled_until`)."""
        every, until = self.snapshot_every, self.snapshot_until
        if every is None or until is None:
            return
        at = next_moment(since, every)
        while at <= until:
            model = self.settled.copy()
            for entry in self.pending:
                if entry.t >= at:  # pending is in time order
                    break
                self._fold(model, entry)
            self._take_snapshot(model, at)
            at += every

    def _fold(self, model: Model, entry: Entry) -> bool:
        """Apply and, unless it is usage within the re-scoring interval, evaluate. True if evaluated."""
        apply(model, entry, self.card)
        last = model.evaluated_at
        if (
            entry.kind == USAGE
            and last is not None
            and 0 <= entry.t - last < self.card.usage_evaluation_seconds
        ):
            return False
        segment = None
        if self.peers is not None and model.clock is not None:
            segment = segment_for(model.facts, self.card)
            model.peer = self.peers.place(self.account_id, segment.name, model, model.clock)
        evaluate(model, self.card, segment)
        model.evaluated_at = model.clock
        return True

    def _insert(self, entry: Entry) -> bool:
        """Add to the timeline; True if the live model was re-evaluated."""
        if self.settled_until is not None and entry.t <= self.settled_until:
            # Later than the lateness bound: best effort, counted.
            evaluated = False
            for model in (self.settled, self._candidate, self.live):
                if model is not None:
                    evaluated = self._fold(model, entry)
                    if entry.kind != TICK:
                        model.late += 1
            self.late_events += 1
            return evaluated
        pending = self.pending
        key = entry.key()
        if not pending or key >= pending[-1].key():
            pending.append(entry)
            evaluated = self._fold(self.live, entry)
        else:
            at = bisect.bisect_right([e.key() for e in pending], key)
            pending.insert(at, entry)
            if at < self._candidate_len:
                self._candidate = None
            self._refold()
            evaluated = True
            if self.snapshot_until is not None and entry.t < self.snapshot_until:
                self._retake_snapshots(entry.t)
        if entry.kind != TICK:
            self._ids.add(entry.id)
        self._settle()
        return evaluated

    def _refold(self) -> None:
        live = self.settled.copy()
        for entry in self.pending:
            self._fold(live, entry)
        self.live = live

    def _settle(self) -> None:
        clock = self.live.clock
        if clock is None or not self.pending:
            return
        candidate = self._candidate
        if candidate is not None and (
            (candidate.clock is not None and candidate.clock <= clock - self.lateness)
            or len(self.pending) > MAX_PENDING
        ):
            self.settled = candidate
            self.settled_until = candidate.clock
            del self.pending[: self._candidate_len]
            self._ids = {e.id for e in self.pending if e.kind != TICK}
            candidate = None
        if candidate is None and self.pending:
            self._candidate = self.live.copy()
            self._candidate_len = len(self.pending)
        else:
            self._candidate = candidate

    # --- outputs ----------------------------------------------------------------------------

    def _observe(self, cause: Cause) -> None:
        """Record a meaningful change of the shown health, and reconcile the signals told."""
        live, card = self.live, self.card
        outcomes = (live.churned_at, live.renewed_at)
        if outcomes != self._outcomes_told:
            if live.churned_at is not None and live.churned_at != self._outcomes_told[0]:
                self.outputs.outcomes.append(("churned", live.churned_at))
            if live.renewed_at is not None and live.renewed_at != self._outcomes_told[1]:
                self.outputs.outcomes.append(("renewed", live.renewed_at))
            self._outcomes_told = outcomes
        held = signals.current(live, self.account_id, card)
        governed = self.governed(cause.at)
        if governed:
            held = {t: keys for t, keys in held.items() if t not in MODEL_REPLACES}
            record = self.model_record
            if record is not None and record.risk_on and not live.churned and self._risk_told():
                held["churn_risk"] = [f"churn_risk:{self.account_id}:{record.episode}"]
        emitted = self.emitted
        recorded = self.recorded
        changed = False
        top = None
        # A governed account's scores are recorded when the model scores (`apply_model`), not per
        # event; until the batch's model scores are applied, its first shows the scorecard's.
        model_shown = self.shown_model() if governed else None
        score, band = model_shown if model_shown is not None else effective(live, card)
        if not governed and score is not None and band is not None:
            top = top_measure(live, card)
            override_id = live.override[0] if live.override else None
            changed = (
                recorded is None
                or abs(score - recorded[0]) >= card.history_min_change
                or band != recorded[1]
                or top != recorded[2]
                or live.segment != recorded[3]
                or override_id != recorded[4]
            )
        if not changed and held == emitted:
            return
        shown_factors = (
            self.model_factors() if governed else factors(live, card) if score is not None else []
        )
        previous = (recorded[0], recorded[1]) if recorded is not None else (None, None)
        if changed:
            assert score is not None and band is not None and live.score is not None
            after = {f.measure: (f.contribution if f.value is not None else None) for f in shown_factors}
            before: dict[str, float | None] = {}
            if recorded is not None:
                # Stored as a list in the order of the recorded segment's measures.
                names = [m[0] for m in plan_of(card.segment_named(recorded[3] or ""))]
                before = dict(zip(names, recorded[5], strict=False))
            contributions = [
                {"measure": m, "before": before.get(m), "after": after.get(m)}
                for m in dict.fromkeys([*after, *before])
            ]
            self.outputs.changes.append(
                Change(
                    cause=cause,
                    previous_score=previous[0],
                    previous_band=previous[1],
                    score=score,
                    band=band,
                    computed_score=live.score,
                    segment=live.segment or "",
                    factors=shown_factors,
                    contributions=contributions,
                    override=live.override is not None,
                )
            )
            self.recorded = [
                score,
                band,
                top,
                live.segment,
                live.override[0] if live.override else None,
                [after.get(m[0]) for m in plan_of(card.segment_named(live.segment or ""))],
            ]
        if held != emitted:
            self._reconcile(cause, held, (score, band), previous, shown_factors)

    def _reconcile(
        self,
        cause: Cause,
        held: dict[str, list[str]],
        shown: tuple[float | None, str | None],
        previous: tuple[float | None, str | None],
        shown_factors: list[Factor],
    ) -> None:
        """Raise what holds and was not told; clear what was told and holds no more.

        A band drop or score drop caused by a step that raises a more specific signal (the
        detractor, the failed payment) is not told on its own: the specific signal carries the
        score and band before and after, so the CSM gets one alert about one cause. Such a
        silent episode is cleared silently too.
        """
        live, card, emitted = self.live, self.card, self.emitted
        fresh = [(t, k) for t, keys in held.items() for k in keys if k not in emitted.get(t, ())]
        specific = [t for t, _ in fresh if t not in signals.DERIVED_TYPES]
        folded = sorted({t for t, _ in fresh if t in signals.DERIVED_TYPES}) if specific else []
        for signal_type, key in fresh:
            if signal_type in folded:
                self.silent.append(key)
                continue
            payload = signals.raised(
                signal_type, key, live, card, self.account_id, shown, previous, shown_factors
            )
            if folded:
                payload.evidence["also"] = folded
            self.outputs.signals.append((cause, payload))
        for signal_type, told in emitted.items():
            if signal_type in held:
                continue
            spoken = [k for k in told if k not in self.silent]
            if spoken:
                self.outputs.signals.append(
                    (
                        cause,
                        signals.cleared(
                            signal_type, spoken[-1], live, self.account_id, shown, previous, shown_factors
                        ),
                    )
                )
        self.emitted = {k: list(v) for k, v in held.items()}
        told_now = {k for keys in held.values() for k in keys}
        self.silent = [k for k in self.silent if k in told_now]

    def told(self) -> dict[str, list[str]]:
        """The signals downstream has been told are open (those folded into another are not)."""
        told = {t: [k for k in keys if k not in self.silent] for t, keys in self.emitted.items()}
        return {t: keys for t, keys in told.items() if keys}

    def take_outputs(self) -> Outputs:
        outputs, self.outputs = self.outputs, Outputs()
        return outputs

    @property
    def last_event_at(self) -> float | None:
        return self.live.clock


def model_factors(parts: list[tuple[str, float, str]], probability: float) -> list[Factor]:
    """A model score's explanation as the factors the APIs and events carry."""
    total = sum(abs(c) for _, c, _ in parts) or 1.0
    return [
        Factor(
            measure=column,
            # the score this account would have were this column typical
            value=serving.score_of(min(max(probability - c, 0.0), 1.0)),
            weight=round(abs(c) / total, 4),
            contribution=round(-100 * c, 2),
            detail=words,
        )
        for column, c, words in parts
    ]


def cause_time(cause: Cause) -> str:
    return moment(cause.at).isoformat()
