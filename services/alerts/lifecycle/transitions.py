"""An alert's life, as pure decisions: what a signal does to it, and what time does to it.

One alert per account and kind (risk, expansion) is open at a time: the account's episode.
Each signal type raised in it is one of its reasons (`services/alerts/render/reasons.py`). A signal's
`dedupe_key` names one occurrence: the consumer drops a key it has seen before any of this
runs. Then:

- raised, nothing open        -> open a new alert and notify, unless the account's last alert
                                 of that kind was notified within the cooldown: then reopen
                                 it and put it in the digest (a flapping account pings once);
- raised, one open            -> the signal joins it (a new reason, or news of a known one)
                                 and the alert is updated in place; notify again only when the
                                 severity rose above what was already notified (and it is not
                                 snoozed), as a follow-up; a new reason otherwise goes to the
                                 daily digest;
- cleared                     -> start that reason's clear timer; the reason clears only if
                                 it is not raised again for `clear_after_minutes` (hysteresis),
                                 and the alert resolves when all its reasons have cleared;
- time passes                 -> snoozes end (the owner is reminded), clear timers resolve,
                                 unacknowledged high-severity alerts escalate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.alerts.routing.config import Escalation, Lifecycle, rank
from shared.events import Severity, SignalKind

MAX_SNOOZE = timedelta(days=90)


class AlertState(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"


class Action(StrEnum):
    OPEN = "open"
    UPDATE = "update"
    REOPEN = "reopen"
    CLEAR = "clear"  # start the clear timer
    RESOLVE = "resolve"  # cleared with no hysteresis configured
    IGNORE = "ignore"


class Notify(StrEnum):
    NONE = "none"
    ALERT = "alert"  # the first notification of this alert
    UPDATE = "update"  # a follow-up: severity rose
    DIGEST = "digest"  # recorded for the daily digest only (a cooldown reopen, a new reason)


@dataclass(frozen=True)
class AlertSnapshot:
    state: AlertState
    severity: Severity
    notified_severity: Severity | None
    last_notified_at: datetime | None
    last_signal_at: datetime  # event time of the newest raised occurrence
    clearing_since: datetime | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    notify: Notify
    reason: str  # a metric label


def on_raised(
    open_alert: AlertSnapshot | None,
    last_resolved: AlertSnapshot | None,
    severity: Severity,
    occurred_at: datetime,
    now: datetime,
    policy: Lifecycle,
    *,
    replayed: bool = False,
    new_reason: bool = False,
) -> Decision:
    """What a raised signal does. A signal from history is recorded but pings nobody: one
    older than `max_signal_age_hours` (a backfill), or one a replay (`churnwatch replay`,
    e.g. for a new scorecard) re-derived, which must not alert CSMs about the past again.

    `new_reason`: the open alert has no active reason of this signal's type yet. Told once per
    episode, the owner hears of a new reason in the digest unless it makes the alert worse."""
    stale = policy.max_signal_age_hours is not None and now - occurred_at > timedelta(
        hours=policy.max_signal_age_hours
    )
    quiet_reason = "replayed" if replayed else "stale" if stale else None
    if open_alert is not None:
        if quiet_reason is not None:
            return Decision(Action.UPDATE, Notify.NONE, quiet_reason)
        if open_alert.state is AlertState.SNOOZED:
            return Decision(Action.UPDATE, Notify.NONE, "snoozed")
        told = open_alert.notified_severity
        if told is None:
            # Nobody was pinged (digest-only, or below everyone's threshold): ask routing again
            # only if the alert got more severe.
            if rank(severity) > rank(open_alert.severity):
                return Decision(Action.UPDATE, Notify.ALERT, "severity_rose")
        elif rank(severity) > rank(told):
            return Decision(Action.UPDATE, Notify.UPDATE, "severity_rose")
        if new_reason:
            return Decision(Action.UPDATE, Notify.DIGEST, "new_reason")
        return Decision(Action.UPDATE, Notify.NONE, "already_open")
    if quiet_reason is not None:
        return Decision(Action.IGNORE, Notify.NONE, quiet_reason)
    if (
        last_resolved is not None
        and last_resolved.last_notified_at is not None
        and now - last_resolved.last_notified_at < timedelta(hours=policy.cooldown_hours)
    ):
        told = last_resolved.notified_severity
        if told is not None and rank(severity) > rank(told):
            return Decision(Action.REOPEN, Notify.ALERT, "severity_rose")
        return Decision(Action.REOPEN, Notify.DIGEST, "cooldown")
    return Decision(Action.OPEN, Notify.ALERT, "new")


def on_cleared(
    open_alert: AlertSnapshot | None, reason_last_signal_at: datetime | None, occurred_at: datetime,
    policy: Lifecycle,
) -> Decision:
    """What a cleared signal does to the open alert's reason of its type (`reason_last_signal_at`:
    the event time of that reason's newest raise, None if it has no such active reason).
    RESOLVE and CLEAR act on the reason; the alert resolves once no reason holds."""
    if open_alert is None:
        return Decision(Action.IGNORE, Notify.NONE, "no_open_alert")
    if reason_last_signal_at is None:
        return Decision(Action.IGNORE, Notify.NONE, "no_such_reason")
    if occurred_at < reason_last_signal_at:
        # Raised again after this clear was observed: the clear is out of date.
        return Decision(Action.IGNORE, Notify.NONE, "stale_clear")
    if policy.clear_after_minutes == 0:
        return Decision(Action.RESOLVE, Notify.NONE, "cleared")
    return Decision(Action.CLEAR, Notify.NONE, "clearing")


def clear_deadline(clearing_since: datetime, policy: Lifecycle) -> datetime:
    return clearing_since + timedelta(minutes=policy.clear_after_minutes)


def escalation_due_at(
    notified_at: datetime, severity: Severity, kind: SignalKind, escalation: Escalation | None
) -> datetime | None:
    """When an unacknowledged alert escalates; None if it never does (risk alerts only)."""
    if escalation is None or kind is not SignalKind.RISK or rank(severity) < rank(escalation.min_severity):
        return None
    return notified_at + timedelta(hours=escalation.after_hours)


def snooze_problem(until: datetime, now: datetime) -> str | None:
    if until <= now:
        return "must be in the future"
    if until - now > MAX_SNOOZE:
        return "must be within 90 days"
    return None
