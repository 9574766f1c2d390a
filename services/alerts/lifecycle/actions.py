"""What a person can do to an alert (acknowledge, snooze, resolve, give feedback), the same
whether it comes from the API or from a link in a message. Each runs in one transaction,
locks the alert row, records who did it and how, and is safe to repeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.consumer import resolve
from services.alerts.lifecycle.transitions import AlertState, snooze_problem
from services.alerts.metrics import ALERTS_FEEDBACK, ALERTS_LIFECYCLE
from services.alerts.slack.edits import queue_edits
from services.alerts.store import alert_records
from services.alerts.store import feedback as feedback_store
from shared.http import ApiError


async def _alert(session: AsyncSession, alert_id: int) -> dict[str, Any]:
    alert = await alert_records.lock_alert(session, alert_id)
    if alert is None:
        raise ApiError(404, "alert_not_found", f"there is no alert {alert_id}")
    return alert


async def _show_on_slack(session: AsyncSession, alert_id: int, action: str, now: datetime) -> None:
    """Whoever acted, and however (Slack, a link, the API), the Slack message shows it."""
    await queue_edits(session, alert_id, cause=f"action:{action}", now=now, posted_only=True)


def _not_resolved(alert: dict[str, Any], verb: str) -> None:
    if alert["state"] == AlertState.RESOLVED:
        raise ApiError(
            409,
            "alert_resolved",
            f"alert {alert['id']} was resolved ({alert['resolved_reason']}); there is nothing to {verb}",
        )


async def acknowledge(
    session: AsyncSession,
    alert_id: int,
    actor: str,
    via: str,
    now: datetime,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    alert = await _alert(session, alert_id)
    _not_resolved(alert, "acknowledge")
    if alert["state"] == AlertState.ACKNOWLEDGED:
        return alert  # acknowledging twice changes nothing
    changes = {
        "state": AlertState.ACKNOWLEDGED.value,
        "acknowledged_at": now,
        "acknowledged_by": actor,
        "snoozed_until": None,
        "updated_at": now,
    }
    await alert_records.update_alert(session, alert_id, **changes)
    await alert_records.insert_action(session, alert_id, "acknowledge", actor, via, now, extra)
    await _show_on_slack(session, alert_id, "acknowledge", now)
    ALERTS_LIFECYCLE.labels(alert["signal_type"], "acknowledged", via).inc()
    return {**alert, **changes}


async def snooze(
    session: AsyncSession,
    alert_id: int,
    actor: str,
    via: str,
    now: datetime,
    *,
    until: datetime,
    reason: str,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    problem = snooze_problem(until, now)
    if problem:
        raise ApiError(400, "invalid_request", f"until: {problem}", [{"field": "until", "message": problem}])
    alert = await _alert(session, alert_id)
    _not_resolved(alert, "snooze")
    changes = {
        "state": AlertState.SNOOZED.value,
        "snoozed_until": until,
        "snooze_reason": reason,
        "snoozed_by": actor,
        "updated_at": now,
    }
    await alert_records.update_alert(session, alert_id, **changes)
    await alert_records.insert_action(
        session,
        alert_id,
        "snooze",
        actor,
        via,
        now,
        {"until": until.isoformat(), "reason": reason, **(extra or {})},
    )
    await _show_on_slack(session, alert_id, "snooze", now)
    ALERTS_LIFECYCLE.labels(alert["signal_type"], "snoozed", via).inc()
    return {**alert, **changes}


async def resolve_manually(
    session: AsyncSession,
    alert_id: int,
    actor: str,
    via: str,
    now: datetime,
    reason: str | None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    alert = await _alert(session, alert_id)
    if alert["state"] == AlertState.RESOLVED:
        return alert  # resolving twice changes nothing
    await resolve(
        session,
        alert,
        now,
        reason=f"manual: {reason}" if reason else "manual",
        actor=actor,
        via=via,
        extra=extra,
    )
    await _show_on_slack(session, alert_id, "resolve", now)
    ALERTS_LIFECYCLE.labels(alert["signal_type"], "resolved", via).inc()
    return await _alert(session, alert_id)


async def feedback(
    session: AsyncSession,
    alert_id: int,
    actor: str,
    via: str,
    now: datetime,
    *,
    useful: bool,
    comment: str | None,
) -> dict[str, Any]:
    alert = await _alert(session, alert_id)
    await feedback_store.upsert_feedback(session, alert_id, actor, alert["signal_type"], useful, comment, now)
    await alert_records.insert_action(
        session, alert_id, "feedback", actor, via, now, {"useful": useful, "comment": comment}
    )
    await _show_on_slack(session, alert_id, "feedback", now)
    ALERTS_FEEDBACK.labels(alert["signal_type"], "useful" if useful else "not_useful").inc()
    return alert
