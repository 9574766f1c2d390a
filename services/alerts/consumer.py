"""The consumer side: traits become contacts; risk signals move alerts through their lifecycle
and queue deliveries.

Everything a batch decides (signal ledger rows, alert changes, outbox rows, digest items) is
written in the consumer's batch transaction, together with the consumed offsets, and sending
happens later from the `alert_deliveries` outbox. So a crash can neither lose a notification
(the rows commit with the offsets or not at all) nor repeat one (each dedupe key is recorded
once, each outbox row has a unique delivery key).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.clock import Clock
from services.alerts.delivery.outbox import Purpose, deliveries_for
from services.alerts.lifecycle.transitions import (
    Action,
    AlertSnapshot,
    AlertState,
    Decision,
    Notify,
    escalation_due_at,
    on_cleared,
    on_raised,
)
from services.alerts.metrics import (
    ALERTS_CREATED,
    ALERTS_IGNORED,
    ALERTS_LIFECYCLE,
    ALERTS_SUPPRESSED,
    ALERTS_UNROUTABLE,
    ALERTS_UPDATED,
)
from services.alerts.render.reasons import Reason, ReasonState, alert_columns, clearing_since, replaced
from services.alerts.routing.config import RoutingConfig, looks_like_email, rank, secret_value
from services.alerts.routing.plan import (
    AlertFacts,
    Capabilities,
    Notice,
    Role,
    StoredPreferences,
    plan_notices,
    resolve_segment,
)
from services.alerts.slack.edits import queue_edits
from services.alerts.store import alert_records, signal_ledger
from services.alerts.store import contacts as contact_store
from services.alerts.store import deliveries as delivery_store
from services.alerts.store import digests as digest_store
from services.alerts.store import preferences as preference_store
from shared.account_facts import AccountFacts, merge_traits
from shared.consumer import ConsumedEvent, HandlerResult
from shared.events import EventType, RiskSignalPayload, Severity, SignalKind, SignalStatus, TraitsPayload
from shared.settings import Settings

log = structlog.get_logger(__name__)


def capabilities(settings: Settings, config: RoutingConfig) -> Capabilities:
    # Checked here, at start-up, so a mistyped address stops the service with its name instead
    # of failing every signal that falls back to it.
    if settings.alert_default_email is not None and not looks_like_email(settings.alert_default_email):
        raise ValueError(
            f"CHURNWATCH_ALERT_DEFAULT_EMAIL is not an email address: {settings.alert_default_email!r}")
    return Capabilities(
        slack_api=secret_value(settings.slack_bot_token) is not None,
        slack_webhook=bool(settings.slack_webhook_url),
        webhook_channels=frozenset(config.slack.webhooks),
        default_email=settings.alert_default_email,
    )


def snapshot(row: Mapping[str, Any]) -> AlertSnapshot:
    return AlertSnapshot(
        state=AlertState(row["state"]),
        severity=Severity(row["severity"]),
        notified_severity=Severity(row["notified_severity"]) if row["notified_severity"] else None,
        last_notified_at=row["last_notified_at"],
        last_signal_at=row["last_signal_at"],
        clearing_since=row["clearing_since"],
    )


class AlertsHandler:
    """A `DurableConsumer` handler; calls `on_new_deliveries` once a batch that queued
    deliveries has committed, so the dispatcher sends without waiting for its next poll."""

    def __init__(
        self, settings: Settings, config: RoutingConfig, clock: Clock, on_new_deliveries: Callable[[], None]
    ) -> None:
        self._config = config
        self._clock = clock
        self._capabilities = capabilities(settings, config)
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
        if signals:
            batch = _Batch(self._config, self._capabilities, self._clock.now())
            await batch.run(session, signals)
            result.after_commit.append(batch.count)
            if batch.queued:
                # Woken only after commit: the dispatcher must not look for rows not yet visible.
                result.after_commit.append(self._on_new_deliveries)
        return result

    async def _apply_traits(
        self, session: AsyncSession, updates: list[tuple[str, dict[str, Any], datetime]]
    ) -> None:
        if not updates:
            return
        stored = await contact_store.lock_contact_traits(session, (a for a, _, _ in updates))
        changed: dict[str, dict[str, Any]] = {}
        for account_id, incoming, occurred_at in updates:
            current = changed.get(account_id, stored.get(account_id, {}))
            changed[account_id] = merge_traits(current, incoming, occurred_at)
        await contact_store.save_contacts(session, changed)


class _Batch:
    """The signals of one consumed batch, applied in Kafka order; metrics counted after commit."""

    def __init__(self, config: RoutingConfig, capabilities: Capabilities, now: datetime) -> None:
        self.config = config
        self.capabilities = capabilities
        self.now = now
        self.queued = 0
        self.created: Counter[tuple[str, str]] = Counter()
        self.duplicates: Counter[str] = Counter()
        self.updated: Counter[tuple[str, str]] = Counter()
        self.ignored: Counter[tuple[str, str]] = Counter()
        self.lifecycle: Counter[tuple[str, str, str]] = Counter()
        self.unroutable = 0

    async def run(
        self, session: AsyncSession, signals: list[tuple[ConsumedEvent, RiskSignalPayload]]
    ) -> None:
        accounts = {c.envelope.account_id for c, _ in signals if c.envelope.account_id}
        traits = await contact_store.load_traits(session, accounts)
        prefs = await preference_store.load_preferences(session)
        for consumed, signal in signals:
            account_id = consumed.envelope.account_id
            assert account_id is not None
            facts = AccountFacts.from_traits(traits.get(account_id, {}))
            await self._apply(session, consumed, signal, account_id, facts, prefs)

    async def _apply(
        self,
        session: AsyncSession,
        consumed: ConsumedEvent,
        signal: RiskSignalPayload,
        account_id: str,
        facts: AccountFacts,
        prefs: Mapping[str, StoredPreferences],
    ) -> None:
        envelope = consumed.envelope
        kind = signal.signal_type
        signal_id = await signal_ledger.record_signal(
            session,
            {
                "dedupe_key": signal.dedupe_key,
                "account_id": account_id,
                "signal_type": kind,
                "status": signal.status.value,
                "severity": signal.severity.value,
                "event_id": envelope.event_id,
                "occurred_at": envelope.occurred_at,
                "received_at": self.now,
                "signal": signal.model_dump(mode="json"),
                "outcome": "recorded",
            },
        )
        if signal_id is None:
            self.duplicates[kind] += 1
            return
        current = await alert_records.lock_open_alert(session, account_id, signal.kind.value)
        reason_rows = await alert_records.load_reasons(session, current["id"]) if current else []
        own_row = next((r for r in reason_rows if r["signal_type"] == kind), None)
        own_active = own_row if own_row is not None and own_row["state"] == ReasonState.ACTIVE else None
        if signal.status is SignalStatus.CLEARED:
            await self._cleared(
                session, current, reason_rows, own_active, signal_id, kind, envelope.occurred_at
            )
            return

        policy = self.config.lifecycle
        last_resolved = (
            None if current
            else await alert_records.lock_last_resolved(session, account_id, signal.kind.value)
        )
        decision = on_raised(
            snapshot(current) if current else None,
            snapshot(last_resolved) if last_resolved else None,
            signal.severity,
            envelope.occurred_at,
            self.now,
            policy,
            replayed=signal.evidence.get("replayed") is True,
            new_reason=current is not None and own_active is None,
        )
        if decision.action is Action.IGNORE:
            self.ignored[(kind, decision.reason)] += 1
            await signal_ledger.set_signal_outcome(session, signal_id, None, f"ignore:{decision.reason}")
            return
        segment = resolve_segment(self.config, signal.segment, facts)
        reason = _raised_reason(own_row if current else None, signal, envelope.occurred_at, self.now)
        if decision.action is Action.OPEN:
            alert: dict[str, Any] = {
                "dedupe_key": signal.dedupe_key,
                "account_id": account_id,
                "signal_type": kind,
                "kind": signal.kind.value,
                "severity": signal.severity.value,
                "summary": signal.summary,
                "signal": signal.model_dump(mode="json"),
                "signal_event_id": envelope.event_id,
                "occurred_at": envelope.occurred_at,
                "created_at": self.now,
                "updated_at": self.now,
                "state": AlertState.OPEN.value,
                "occurrences": 1,
                "last_dedupe_key": signal.dedupe_key,
                "last_signal_at": envelope.occurred_at,
                "opened_at": self.now,
                "reopened_count": 0,
                "clearing_since": None,
                "segment": segment.name if segment else signal.segment,
                "notified_severity": None,
                "last_notified_at": None,
                "escalate_at": None,
                "escalated_at": None,
            }
            alert["id"] = await alert_records.insert_alert(session, alert)
            self.created[(kind, signal.severity.value)] += 1
        else:
            base = current if decision.action is Action.UPDATE else last_resolved
            assert base is not None
            others = [Reason.of(r) for r in reason_rows] if decision.action is Action.UPDATE else []
            # Updated in place: the alert is named after its worst reason, whichever just changed.
            changes: dict[str, Any] = {
                **alert_columns(replaced(others, Reason.of(reason))),
                "last_dedupe_key": signal.dedupe_key,
                "updated_at": self.now,
                "segment": segment.name if segment else signal.segment,
                "occurrences": base["occurrences"] + 1,
                "last_signal_at": max(base["last_signal_at"], envelope.occurred_at),
            }
            if decision.action is Action.REOPEN:
                changes.update(
                    state=AlertState.OPEN.value,
                    reopened_count=base["reopened_count"] + 1,
                    resolved_at=None,
                    resolved_reason=None,
                    resolved_by=None,
                    acknowledged_at=None,
                    acknowledged_by=None,
                    snoozed_until=None,
                    snooze_reason=None,
                    snoozed_by=None,
                    escalated_at=None,
                    # Reopened quietly (for the digest), it can still escalate if nobody acts:
                    # the safety net under the cooldown.
                    escalate_at=escalation_due_at(
                        self.now,
                        Severity(changes["severity"]),
                        SignalKind(base["kind"]),
                        (segment.escalation if segment and segment.escalation else None)
                        or self.config.escalation,
                    ),
                )
                self.lifecycle[(kind, "reopened", "signal")] += 1
            await alert_records.update_alert(session, base["id"], **changes)
            alert = {**base, **changes}
            self.updated[(kind, decision.reason)] += 1
        await alert_records.save_reason(session, {**reason, "alert_id": alert["id"]})
        await signal_ledger.set_signal_outcome(
            session, signal_id, alert["id"], f"{decision.action}:{decision.reason}"
        )
        if decision.notify is not Notify.NONE:
            await self._notify(
                session, alert, signal, signal_id, decision, facts, segment, prefs
            )
        if decision.action is Action.UPDATE and self.capabilities.slack_api:
            # The first message shows every reason as it stands: edit it in place.
            self.queued += await queue_edits(
                session, alert["id"], cause=f"signal:{signal_id}", now=self.now
            )

    async def _cleared(
        self,
        session: AsyncSession,
        current: dict[str, Any] | None,
        reason_rows: list[dict[str, Any]],
        own: dict[str, Any] | None,
        signal_id: int,
        kind: str,
        occurred_at: datetime,
    ) -> None:
        """A cleared signal clears its reason (after the hysteresis); the alert resolves when
        no reason holds, else it is updated in place."""
        decision = on_cleared(
            snapshot(current) if current else None,
            own["last_signal_at"] if own else None,
            occurred_at,
            self.config.lifecycle,
        )
        if decision.action is Action.IGNORE or current is None or own is None:
            self.ignored[(kind, decision.reason)] += 1
        elif decision.action is Action.CLEAR:
            clearing = own["clearing_since"] or self.now
            await alert_records.update_reason(
                session, own["id"], clearing_since=clearing, updated_at=self.now
            )
            reasons = replaced(
                [Reason.of(r) for r in reason_rows], Reason.of({**own, "clearing_since": clearing})
            )
            await alert_records.update_alert(
                session, current["id"], updated_at=self.now, clearing_since=clearing_since(reasons)
            )
        else:
            await alert_records.clear_reasons(session, current["id"], self.now, kind)
            remaining = [Reason.of(r) for r in reason_rows if r["signal_type"] != kind]
            # The alert keeps being about its other reasons, or ends with its last one.
            columns = alert_columns(remaining)
            if columns:
                await alert_records.update_alert(session, current["id"], updated_at=self.now, **columns)
            else:
                await resolve(session, current, self.now, reason="cleared", actor="signal")
                self.lifecycle[(kind, "resolved", "signal")] += 1
        changed = current is not None and own is not None and decision.action is not Action.IGNORE
        if changed and current is not None and self.capabilities.slack_api:
            self.queued += await queue_edits(
                session, current["id"], cause=f"signal:{signal_id}", now=self.now
            )
        await signal_ledger.set_signal_outcome(
            session, signal_id, current["id"] if current else None, f"{decision.action}:{decision.reason}"
        )

    async def _notify(
        self,
        session: AsyncSession,
        alert: dict[str, Any],
        signal: RiskSignalPayload,
        signal_id: int,
        decision: Decision,
        facts: AccountFacts,
        segment: Any,
        prefs: Mapping[str, StoredPreferences],
    ) -> None:
        notify = decision.notify
        severity = Severity(alert["severity"])
        # A digest line about a new reason is as severe as that reason, not as the whole alert.
        planned = signal.severity if decision.reason == "new_reason" else severity
        notices = plan_notices(
            AlertFacts(planned, signal.segment, force_digest=notify is Notify.DIGEST),
            facts,
            self.config,
            segment,
            prefs,
            self.capabilities,
            self.now,
        )
        purpose = Purpose.UPDATE if notify is Notify.UPDATE else Purpose.ALERT
        # The first message of an episode waits a moment, so the reasons a bad day raises within
        # seconds of each other arrive as one message.
        held_until = (
            self.now + timedelta(seconds=self.config.lifecycle.group_wait_seconds)
            if purpose is Purpose.ALERT
            else self.now
        )
        rows = deliveries_for(
            notices,
            alert_id=alert["id"],
            purpose=purpose,
            tag=str(signal_id),
            now=self.now,
            details={"signal_id": signal_id},
            hold_until=held_until,
        )
        folded: set[tuple[str, str]] = set()
        if notify in (Notify.UPDATE, Notify.DIGEST) and alert["notified_severity"] is not None:
            # Whoever's first message is still waiting reads this in it: no follow-up, no digest line.
            waiting = await delivery_store.unclaimed_first_notices(session, alert["id"])
            folded = {(r.channel, r.recipient) for r in rows if (r.channel, r.recipient) in waiting}
            rows = [r for r in rows if (r.channel, r.recipient) not in folded]
            notices = [
                n
                for n in notices
                if not (n.targets and all((t.channel.value, t.address) in waiting for t in n.targets))
            ]
        self.queued += await delivery_store.insert_deliveries(session, rows)
        digest = [notice for notice in notices if notice.digest and notice.skipped is None]
        item_reason = decision.reason if decision.reason in ("cooldown", "new_reason") else "digest"
        await digest_store.insert_digest_items(
            session,
            [
                {
                    "recipient": n.recipient,
                    "alert_id": alert["id"],
                    "signal_id": signal_id,
                    "reason": item_reason,
                    "targets": [{"channel": t.channel.value, "address": t.address} for t in n.targets],
                    "timezone": n.timezone,
                    "digest_time": n.digest_time.strftime("%H:%M"),
                    "added_at": self.now,
                }
                for n in digest
            ],
        )
        if not rows and not digest and not folded:
            if not any(n.skipped == "below_min_severity" for n in notices):
                self.unroutable += 1
                log.warning("alert_unroutable", alert_id=alert["id"], account_id=alert["account_id"])
            return
        if rows or folded:
            told = alert["notified_severity"]
            changes: dict[str, Any] = {
                "notified_severity": (
                    severity.value if told is None or rank(severity) > rank(Severity(told)) else told
                ),
            }
            if rows:
                changes["last_notified_at"] = self.now
            if rows and alert["escalate_at"] is None and alert["escalated_at"] is None:
                changes["escalate_at"] = escalation_due_at(
                    _owner_told_at(notices, held_until),
                    severity,
                    SignalKind(alert["kind"]),
                    (segment.escalation if segment and segment.escalation else None)
                    or self.config.escalation,
                )
            await alert_records.update_alert(session, alert["id"], **changes)

    def count(self) -> None:
        for (kind, severity), n in self.created.items():
            ALERTS_CREATED.labels(kind, severity).inc(n)
        for kind, n in self.duplicates.items():
            ALERTS_SUPPRESSED.labels(kind).inc(n)
        for (kind, reason), n in self.updated.items():
            ALERTS_UPDATED.labels(kind, reason).inc(n)
        for (kind, reason), n in self.ignored.items():
            ALERTS_IGNORED.labels(kind, reason).inc(n)
        for (kind, action, via), n in self.lifecycle.items():
            ALERTS_LIFECYCLE.labels(kind, action, via).inc(n)
        if self.unroutable:
            ALERTS_UNROUTABLE.inc(self.unroutable)
        log.info(
            "alerts_recorded",
            created=sum(self.created.values()),
            updated=sum(self.updated.values()),
            duplicates=sum(self.duplicates.values()),
            deliveries=self.queued,
        )


def _owner_told_at(notices: Sequence[Notice], earliest: datetime) -> datetime:
    """Escalation counts from when the owner could first read it (after the group wait and
    their quiet hours)."""
    times = [
        max(n.not_before or earliest, earliest)
        for n in notices
        if n.immediate and n.role in (Role.OWNER, Role.FALLBACK)
    ]
    return min(times) if times else earliest


def _raised_reason(
    row: Mapping[str, Any] | None, signal: RiskSignalPayload, occurred_at: datetime, now: datetime
) -> dict[str, Any]:
    """The alert's reason of this signal's type after it was raised (again): its newest
    occurrence's words, as severe as its worst occurrence while it stayed active."""
    held = row if row is not None and row["state"] == ReasonState.ACTIVE else None
    severity = signal.severity
    if held is not None and rank(Severity(held["severity"])) > rank(severity):
        severity = Severity(held["severity"])
    return {
        "signal_type": signal.signal_type,
        "kind": signal.kind.value,
        "severity": severity.value,
        "summary": signal.summary,
        "signal": signal.model_dump(mode="json"),
        "state": ReasonState.ACTIVE.value,
        "occurrences": (row["occurrences"] if row else 0) + 1,
        "first_signal_at": held["first_signal_at"] if held else occurred_at,
        "last_signal_at": max(held["last_signal_at"], occurred_at) if held else occurred_at,
        "clearing_since": None,
        "cleared_at": None,
        "updated_at": now,
    }


async def resolve(
    session: AsyncSession,
    alert: Mapping[str, Any],
    now: datetime,
    *,
    reason: str,
    actor: str,
    via: str = "signal",
    extra: Mapping[str, Any] | None = None,
) -> None:
    await alert_records.update_alert(
        session,
        alert["id"],
        state=AlertState.RESOLVED.value,
        resolved_at=now,
        resolved_reason=reason,
        resolved_by=actor,
        clearing_since=None,
        updated_at=now,
    )
    await alert_records.clear_reasons(session, alert["id"], now)
    await delivery_store.cancel_pending(session, alert["id"], f"not sent: the alert was resolved ({reason})")
    await alert_records.insert_action(
        session, alert["id"], "resolve", actor, via, now, {"reason": reason, **(extra or {})}
    )
