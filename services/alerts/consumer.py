"""The consumer side: traits become contacts; risk signals become alerts and pending deliveries.

An alert and its deliveries are written in the consumer's batch transaction, together with
the consumed offsets, and sending happens later from the `alert_deliveries` outbox. So a
crash can neither lose a notification (the rows commit with the offsets or not at all) nor
repeat one (the alert exists once per dedupe key, whatever is replayed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import store
from services.alerts.contacts import contact_from_traits
from services.alerts.metrics import ALERTS_CREATED, ALERTS_SUPPRESSED, ALERTS_UNROUTABLE
from services.alerts.routing import RoutingConfig, Target, resolve_targets
from shared.account_facts import merge_traits
from shared.consumer import ConsumedEvent, HandlerResult
from shared.events import EventType, RiskSignalPayload, TraitsPayload
from shared.settings import Settings

log = structlog.get_logger(__name__)


class AlertsHandler:
    """A `DurableConsumer` handler; calls `on_new_deliveries` once a batch that queued
    deliveries has committed, so the dispatcher sends without waiting for its next poll."""

    def __init__(self, settings: Settings, on_new_deliveries: Callable[[], None]) -> None:
        self._routing = RoutingConfig(
            slack_configured=bool(settings.slack_webhook_url),
            default_email=settings.alert_default_email,
        )
        self._on_new_deliveries = on_new_deliveries

    async def __call__(self, session: AsyncSession, events: Sequence[ConsumedEvent]) -> HandlerResult:
        result = HandlerResult()
        traits: list[tuple[str, dict[str, Any], datetime]] = []
        signals: list[tuple[ConsumedEvent, RiskSignalPayload]] = []
        for consumed in events:
            envelope = consumed.envelope
            if envelope.type is EventType.GROUP:
                if not envelope.account_id:
                    result.rejected.append((consumed, "group event without an account (group) id"))
                    continue
                try:
                    payload = envelope.payload_as(TraitsPayload)
                except ValidationError as exc:
                    result.rejected.append((consumed, f"invalid group payload: {exc}"))
                    continue
                traits.append((envelope.account_id, payload.traits, envelope.occurred_at))
            elif envelope.type is EventType.RISK_SIGNAL:
                if not envelope.account_id:
                    result.rejected.append((consumed, "risk signal without an account id"))
                    continue
                try:
                    signals.append((consumed, envelope.payload_as(RiskSignalPayload)))
                except ValidationError as exc:
                    result.rejected.append((consumed, f"invalid risk signal payload: {exc}"))
            # identify (user traits) and anything else on these topics: not alerts' concern.

        # Contacts first, so a signal batched right after its account's group call is routed.
        await self._apply_traits(session, traits)
        # The dispatcher is woken only after commit: it must not look for rows not yet visible.
        if signals and await self._record_alerts(session, signals, result.after_commit):
            result.after_commit.append(self._on_new_deliveries)
        return result

    async def _apply_traits(
        self, session: AsyncSession, updates: list[tuple[str, dict[str, Any], datetime]]
    ) -> None:
        if not updates:
            return
        stored = await store.lock_contact_traits(session, (a for a, _, _ in updates))
        changed: dict[str, dict[str, Any]] = {}
        for account_id, incoming, occurred_at in updates:
            current = changed.get(account_id, stored.get(account_id, {}))
            changed[account_id] = merge_traits(current, incoming, occurred_at)
        await store.save_contacts(
            session, [(contact_from_traits(a, t), t) for a, t in changed.items()]
        )

    async def _record_alerts(
        self,
        session: AsyncSession,
        signals: list[tuple[ConsumedEvent, RiskSignalPayload]],
        on_commit: list[Callable[[], None]],
    ) -> int:
        """Insert alerts for unseen dedupe keys and their deliveries; returns deliveries queued.

        Metrics are counted in `on_commit`: a batch that rolls back and is retried counts once.
        """
        candidates: dict[str, store.NewAlert] = {}
        for consumed, signal in signals:
            envelope = consumed.envelope
            assert envelope.account_id is not None
            # The first in Kafka order wins, as it would across batches.
            candidates.setdefault(signal.dedupe_key, store.NewAlert(
                dedupe_key=signal.dedupe_key,
                account_id=envelope.account_id,
                signal_type=signal.signal_type,
                severity=signal.severity.value,
                summary=signal.summary,
                signal_event_id=envelope.event_id,
                signal=signal.model_dump(mode="json"),
                occurred_at=envelope.occurred_at,
            ))
        created = await store.insert_new_alerts(session, list(candidates.values()))
        suppressed = [
            signal for consumed, signal in signals
            if signal.dedupe_key not in created
            or candidates[signal.dedupe_key].signal_event_id != consumed.envelope.event_id
        ]

        contacts = await store.load_contacts(session, (candidates[k].account_id for k in created))
        targets: list[tuple[int, Target]] = []
        unroutable = 0
        for dedupe_key, alert_id in created.items():
            alert = candidates[dedupe_key]
            routed = resolve_targets(contacts.get(alert.account_id), self._routing)
            if not routed:
                unroutable += 1
                log.warning("alert_unroutable", alert_id=alert_id, account_id=alert.account_id,
                            dedupe_key=dedupe_key)
            targets += [(alert_id, target) for target in routed]
        queued = await store.insert_deliveries(session, targets)

        def count() -> None:
            for key in created:
                ALERTS_CREATED.labels(candidates[key].signal_type, candidates[key].severity).inc()
            for signal in suppressed:
                ALERTS_SUPPRESSED.labels(signal.signal_type).inc()
            if unroutable:
                ALERTS_UNROUTABLE.inc(unroutable)
            log.info("alerts_recorded", created=len(created), suppressed=len(suppressed),
                     deliveries=queued)

        on_commit.append(count)
        return queued

