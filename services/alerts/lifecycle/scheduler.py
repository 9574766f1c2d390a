"""Time-based work, driven by the injected clock: snoozes end, cleared reasons clear and
alerts without any resolve after their hysteresis, unacknowledged alerts escalate, daily
digests go out.

Each tick handles what is due at `clock.now()`, in short transactions that lock the rows
they change (`SKIP LOCKED`), so several instances can tick at once and a tick that crashes
is simply done again by the next one: every delivery it queues has a unique delivery key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts.clock import Clock
from services.alerts.consumer import capabilities, resolve
from services.alerts.delivery.outbox import NewDelivery, Purpose, deliveries_for
from services.alerts.lifecycle.transitions import AlertState, escalation_due_at
from services.alerts.metrics import (
    ALERTS_LIFECYCLE,
    DIGEST_ITEMS_HELD,
    DIGESTS,
    DIGESTS_UNROUTABLE,
    FALSE_POSITIVE_RATIO,
)
from services.alerts.render.reasons import Reason, alert_columns
from services.alerts.routing.config import RoutingConfig
from services.alerts.routing.plan import (
    AlertFacts,
    Role,
    fallback_for,
    plan_escalation,
    plan_notices,
    resolve_segment,
    route_digest,
)
from services.alerts.routing.timing import latest_digest_moment
from services.alerts.slack.edits import queue_edits
from services.alerts.store import alert_records
from services.alerts.store import contacts as contact_store
from services.alerts.store import deliveries as delivery_store
from services.alerts.store import digests as digest_store
from services.alerts.store import feedback as feedback_store
from services.alerts.store import preferences as preference_store
from shared.account_facts import AccountFacts
from shared.events import RiskSignalPayload, Severity, SignalKind
from shared.metrics import ERRORS
from shared.runtime.polling import PollingLoop
from shared.settings import Settings

log = structlog.get_logger(__name__)


class Scheduler:
    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        config: RoutingConfig,
        clock: Clock,
        on_new_deliveries: Callable[[], None],
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._config = config
        self._clock = clock
        self._capabilities = capabilities(settings, config)
        self._on_new_deliveries = on_new_deliveries
        self._loop = PollingLoop()
        self._held_reported: set[tuple[str, date]] = set()  # (recipient, digest day) counted as held
        self.running = False

    def stop(self) -> None:
        self._loop.stop()

    async def run(self) -> None:
        self.running = True
        try:
            await self._loop.run(self._tick, self._settings.alerts_tick_seconds)
        finally:
            self.running = False

    async def _tick(self) -> bool:
        try:
            await self.run_once()
        except Exception as exc:
            ERRORS.labels("alerts", "scheduler").inc()
            log.error("scheduler_tick_failed", error=repr(exc))
        return False

    async def run_once(self) -> dict[str, int]:
        now = self._clock.now()
        done = {
            "snoozes_ended": await self._end_snoozes(now),
            "resolved": await self._resolve_cleared(now),
            "escalated": await self._escalate(now),
            "digests": await self._digests(now),
        }
        await refresh_false_positive_ratio(self._sessions)
        if any(done.values()):
            log.info("scheduler_tick", **done)
            self._on_new_deliveries()
        return done

    # --- snoozes ------------------------------------------------------------------------------------

    async def _end_snoozes(self, now: datetime) -> int:
        async with self._sessions() as session, session.begin():
            rows = await alert_records.lock_due_alerts(session, alert_records.snooze_over(now))
            if not rows:
                return 0
            traits = await contact_store.load_traits(session, {r["account_id"] for r in rows})
            prefs = await preference_store.load_preferences(session)
            for row in rows:
                facts = AccountFacts.from_traits(traits.get(row["account_id"], {}))
                signal = RiskSignalPayload.model_validate(row["signal"])
                segment = resolve_segment(self._config, signal.segment, facts)
                notices = [
                    n
                    for n in plan_notices(
                        AlertFacts(Severity(row["severity"]), signal.segment),
                        facts,
                        self._config,
                        segment,
                        prefs,
                        self._capabilities,
                        now,
                    )
                    if n.role in (Role.OWNER, Role.FALLBACK)
                ]
                note = (
                    f"Snoozed by {row['snoozed_by']} until {row['snoozed_until']:%Y-%m-%d %H:%M} UTC "
                    f"({row['snooze_reason']}); the condition still holds."
                )
                await delivery_store.insert_deliveries(
                    session,
                    deliveries_for(
                        notices,
                        alert_id=row["id"],
                        purpose=Purpose.REMINDER,
                        tag=row["snoozed_until"].isoformat(),
                        now=now,
                        details={"note": note},
                    ),
                )
                escalation = (
                    segment.escalation if segment and segment.escalation else None
                ) or self._config.escalation
                await alert_records.update_alert(
                    session,
                    row["id"],
                    state=AlertState.OPEN.value,
                    snoozed_until=None,
                    updated_at=now,
                    last_notified_at=now if any(n.immediate for n in notices) else row["last_notified_at"],
                    escalate_at=None
                    if row["escalated_at"]
                    else escalation_due_at(
                        now, Severity(row["severity"]), SignalKind(row["kind"]), escalation
                    ),
                )
                await alert_records.insert_action(
                    session,
                    row["id"],
                    "snooze_ended",
                    "clock",
                    "clock",
                    now,
                    {"snoozed_until": row["snoozed_until"].isoformat()},
                )
                if self._capabilities.slack_api:
                    await queue_edits(
                        session, row["id"], cause="clock:snooze_ended", now=now, posted_only=True
                    )
        for row in rows:
            ALERTS_LIFECYCLE.labels(row["signal_type"], "snooze_ended", "clock").inc()
        return len(rows)

    # --- hysteresis ---------------------------------------------------------------------------------

    async def _resolve_cleared(self, now: datetime) -> int:
        """Reasons whose clear timer ran out clear; an alert with none left resolves, one with
        others left is updated in place."""
        deadline = now - timedelta(minutes=self._config.lifecycle.clear_after_minutes)
        resolved: list[dict[str, Any]] = []
        async with self._sessions() as session, session.begin():
            rows = await alert_records.lock_due_alerts(session, alert_records.clear_over(deadline))
            for row in rows:
                reasons = [Reason.of(r) for r in await alert_records.load_reasons(session, row["id"])]
                over = {
                    r.signal_type
                    for r in reasons
                    if r.active and r.clearing_since is not None and r.clearing_since <= deadline
                }
                remaining = [r for r in reasons if r.signal_type not in over]
                columns = alert_columns(remaining)
                alert_over = row["clearing_since"] is not None and row["clearing_since"] <= deadline
                if alert_over or not columns:
                    await resolve(session, row, now, reason="cleared", actor="signal", via="clock")
                    resolved.append(row)
                else:
                    for signal_type in sorted(over):
                        await alert_records.clear_reasons(session, row["id"], now, signal_type)
                    await alert_records.update_alert(session, row["id"], updated_at=now, **columns)
                if self._capabilities.slack_api:
                    # After the resolve, which cancels what was still waiting to be sent.
                    await queue_edits(session, row["id"], cause="clock:cleared", now=now, posted_only=True)
        for row in resolved:
            ALERTS_LIFECYCLE.labels(row["signal_type"], "resolved", "clock").inc()
        return len(resolved)

    # --- escalation ---------------------------------------------------------------------------------

    async def _escalate(self, now: datetime) -> int:
        async with self._sessions() as session, session.begin():
            rows = await alert_records.lock_due_alerts(session, alert_records.escalation_over(now))
            if not rows:
                return 0
            traits = await contact_store.load_traits(session, {r["account_id"] for r in rows})
            prefs = await preference_store.load_preferences(session)
            for row in rows:
                facts = AccountFacts.from_traits(traits.get(row["account_id"], {}))
                segment = self._config.segment(row["segment"]) or resolve_segment(
                    self._config, row["segment"], facts
                )
                escalation = (
                    segment.escalation if segment and segment.escalation else None
                ) or self._config.escalation
                if escalation is not None:
                    owner = facts.csm_name or facts.csm_email or "the owner"
                    waited = (now - row["last_notified_at"]) if row["last_notified_at"] else None
                    hours = (
                        f"{waited.total_seconds() / 3600:.0f} h"
                        if waited
                        else f"{escalation.after_hours:g} h"
                    )
                    note = (
                        f"Not acknowledged {hours} after {owner} was told. "
                        "You are this account's escalation contact."
                    )
                    notices = plan_escalation(
                        escalation.contacts, self._config, prefs, self._capabilities, now
                    )
                    await delivery_store.insert_deliveries(
                        session,
                        deliveries_for(
                            notices,
                            alert_id=row["id"],
                            purpose=Purpose.ESCALATION,
                            tag=f"{row['reopened_count']}",
                            now=now,
                            details={"note": note},
                        ),
                    )
                    await alert_records.insert_action(
                        session,
                        row["id"],
                        "escalate",
                        "clock",
                        "clock",
                        now,
                        {"contacts": [n.recipient for n in notices]},
                    )
                await alert_records.update_alert(session, row["id"], escalated_at=now, updated_at=now)
        for row in rows:
            ALERTS_LIFECYCLE.labels(row["signal_type"], "escalated", "clock").inc()
        return len(rows)

    # --- digests --------------------------------------------------------------------------------------

    async def _digests(self, now: datetime) -> int:
        async with self._sessions() as session:
            recipients = await digest_store.pending_digest_recipients(session)
        made = 0
        held = 0
        for entry in recipients:
            day, moment = latest_digest_moment(
                now, entry["timezone"], time.fromisoformat(entry["digest_time"])
            )
            segment = self._config.segment(entry["segment"])
            route = route_digest(
                entry["targets"], self._capabilities, fallback_for(self._config, segment, self._capabilities)
            )
            if route is None:
                # Nowhere to send it: keep the items (they go out once a route exists) and say so.
                async with self._sessions() as session:
                    waiting = await digest_store.count_pending_items(session, entry["recipient"], moment)
                if waiting and (entry["recipient"], day) not in self._held_reported:
                    self._held_reported.add((entry["recipient"], day))
                    DIGESTS_UNROUTABLE.labels("held").inc()
                    log.warning(
                        "digest_unroutable_held", recipient=entry["recipient"], items=waiting, day=str(day)
                    )
                held += waiting
                continue
            async with self._sessions() as session, session.begin():
                created = await digest_store.create_digest(
                    session,
                    recipient=entry["recipient"],
                    digest_date=day,
                    timezone=entry["timezone"],
                    covers_until=moment,
                    now=now,
                )
                if created is None:
                    continue
                digest_id, items = created
                details: dict[str, Any] = {
                    "recipient_key": entry["recipient"],
                    "items": items,
                    "due_at": now.isoformat(),
                }
                if route.fallback:
                    details["fallback_for"] = entry["recipient"]
                await delivery_store.insert_deliveries(
                    session,
                    [
                        NewDelivery(
                            delivery_key=f"digest:{digest_id}:{route.channel.value}:{route.address}",
                            purpose=Purpose.DIGEST,
                            channel=route.channel.value,
                            recipient=route.address,
                            next_attempt_at=now,
                            created_at=now,
                            digest_id=digest_id,
                            details=details,
                        )
                    ],
                )
            if route.fallback:
                DIGESTS_UNROUTABLE.labels("fallback").inc()
                log.warning(
                    "digest_sent_to_fallback", recipient=entry["recipient"], fallback=route.address
                )
            made += 1
            DIGESTS.inc()
        DIGEST_ITEMS_HELD.set(held)
        # Only today's and yesterday's reports matter for "once per recipient and day".
        oldest = now.date() - timedelta(days=2)
        self._held_reported = {(r, d) for r, d in self._held_reported if d >= oldest}
        return made


async def refresh_false_positive_ratio(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session:
        for row in await feedback_store.feedback_summary(session):
            if row["verdicts"]:
                FALSE_POSITIVE_RATIO.labels(row["signal_type"]).set(row["not_useful"] / row["verdicts"])
