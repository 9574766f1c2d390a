"""Scoring's batch handler: events in, account state, score changes and signals out.

One batch = one transaction (see shared/consumer.py): the accounts it touches are loaded
and locked in one query, events are applied in Kafka order by the pure modules, and the
new state and history are written in one statement each.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import store
from services.scoring.metrics import SCORE_CHANGES, SIGNALS_RAISED, UNATTRIBUTED_EVENTS
from services.scoring.scorecard import Health, assess
from services.scoring.signals import detractor_response, entered_red
from services.scoring.state import AccountState, UnusableEvent, apply_event
from shared.consumer import ConsumedEvent, HandlerResult
from shared.events import (
    Band,
    Envelope,
    EventType,
    Factor,
    HealthScorePayload,
    RiskSignalPayload,
)

SOURCE = "scoring"


def _stored_health(row: store.StoredAccount | None) -> Health | None:
    if row is None or row.score is None or row.band is None:
        return None
    return Health(row.score, Band(row.band), [Factor.model_validate(f) for f in row.factors])


def _to_row(account_id: str, state: AccountState, current: Health | None,
            events_applied: int) -> store.StoredAccount:
    return store.StoredAccount(
        account_id=account_id,
        state=state.model_dump(mode="json"),
        score=current.score if current else None,
        band=current.band.value if current else None,
        factors=[f.model_dump(mode="json") for f in current.factors] if current else [],
        last_event_at=state.clock,
        events_applied=events_applied,
    )


def output_id(kind: str, key: str) -> str:
    """A deterministic id for an output event; hashed when the key would make it too long."""
    candidate = f"{kind}:{key}"
    if len(candidate) <= 200:
        return candidate
    return f"{kind}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


def _output(cause: Envelope, account_id: str, event_id: str, event_type: EventType,
            payload: dict[str, Any]) -> Envelope:
    # Outputs take the cause's time for both stamps: a replay republishes identical events.
    return Envelope(event_id=event_id, type=event_type, account_id=account_id,
                    user_id=cause.user_id, occurred_at=cause.occurred_at,
                    received_at=cause.occurred_at, source=SOURCE, payload=payload)


def _count(unattributed: Counter[str], changes: list[dict[str, Any]],
           outputs: list[Envelope]) -> None:
    """Metrics of a batch, counted once it is durable (a retried batch counts once)."""
    for topic, count in unattributed.items():
        UNATTRIBUTED_EVENTS.labels(topic).inc(count)
    for band, count in Counter(change["band"] for change in changes).items():
        SCORE_CHANGES.labels(band).inc(count)
    signal_types = Counter(o.payload["signal_type"] for o in outputs if o.type is EventType.RISK_SIGNAL)
    for signal_type, count in signal_types.items():
        SIGNALS_RAISED.labels(signal_type).inc(count)


class ScoringHandler:
    async def __call__(self, session: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
        result = HandlerResult()
        attributed = []
        unattributed: Counter[str] = Counter()
        for consumed in events:
            if consumed.envelope.account_id is None:
                unattributed[consumed.topic] += 1
            else:
                attributed.append(consumed)
        # An account's usage, tickets and surveys come from different topics, so Kafka order
        # is not event order. Within a batch, apply them in event-time order (stable, so
        # ties keep partition order); the final state does not depend on it, but the score
        # history and the signals raised on the way do.
        attributed.sort(key=lambda consumed: consumed.envelope.occurred_at)

        rows = await store.lock_accounts(session, (c.envelope.account_id or "" for c in attributed))
        states: dict[str, AccountState] = {}
        health: dict[str, Health | None] = {}
        applied: Counter[str] = Counter()
        changes: list[dict[str, Any]] = []
        for consumed in attributed:
            event = consumed.envelope
            account_id = event.account_id
            assert account_id is not None
            if account_id not in states:
                row = rows.get(account_id)
                states[account_id] = AccountState.model_validate(row.state) if row else AccountState()
                health[account_id] = _stored_health(row)
            state = states[account_id]
            try:
                apply_event(state, event)
            except UnusableEvent as exc:
                result.rejected.append((consumed, str(exc)))
                continue
            applied[account_id] += 1
            previous, current = health[account_id], assess(state)
            health[account_id] = current
            if current is not None and (previous is None or previous.score != current.score
                                        or previous.band is not current.band):
                changes.append(self._change(account_id, event, previous, current))
                result.outputs.append(_output(
                    event, account_id, output_id("health", event.event_id), EventType.HEALTH_SCORE,
                    HealthScorePayload(
                        score=current.score, band=current.band,
                        previous_score=previous.score if previous else None,
                        previous_band=previous.band if previous else None,
                        factors=current.factors, caused_by_event_id=event.event_id,
                    ).model_dump(mode="json")))
            signals = [
                entered_red(account_id, event, previous, current),
                detractor_response(account_id, state, event, current),
            ]
            result.outputs += [self._signal(event, account_id, s) for s in signals if s is not None]

        await store.save_accounts(session, [
            _to_row(account_id, state, health[account_id],
                    (rows[account_id].events_applied if account_id in rows else 0) + applied[account_id])
            for account_id, state in states.items()
        ])
        await store.record_changes(session, changes)
        result.after_commit.append(lambda: _count(unattributed, changes, result.outputs))
        return result

    @staticmethod
    def _change(account_id: str, event: Envelope, previous: Health | None,
                current: Health) -> dict[str, Any]:
        return {
            "account_id": account_id, "event_id": event.event_id, "occurred_at": event.occurred_at,
            "previous_score": previous.score if previous else None,
            "previous_band": previous.band.value if previous else None,
            "score": current.score, "band": current.band.value,
            "factors": [f.model_dump(mode="json") for f in current.factors],
        }

    @staticmethod
    def _signal(cause: Envelope, account_id: str, signal: RiskSignalPayload) -> Envelope:
        return _output(cause, account_id, output_id("signal", signal.dedupe_key), EventType.RISK_SIGNAL,
                       signal.model_dump(mode="json"))
