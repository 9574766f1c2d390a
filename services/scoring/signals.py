"""Risk and expansion signals: when each holds, its dedupe key, and what a CSM reads. Pure.

Signals are level-triggered. After every step the account's model says which signal types
hold and which occurrences (keys) make them up; the engine compares that with what it has
already told downstream and emits `raised` for each occurrence not yet told, and `cleared`
when a type stops holding. So a replay, a redelivery or a late event that re-orders the
past never yields a second key for the same occurrence, and a condition that stops holding
always resolves its alert.

Two families:
  * conditions (entered_red, band_dropped, score_drop, usage_decline, ticket_spike,
    payment_issue, champion_change, renewal_at_risk, onboarding_behind, seats_nearly_full,
    usage_near_plan_limit) hold for an episode; the key names the account and the episode
    number (`usage_decline:acct-1:3` is the account's third decline), so re-evaluating the
    same history gives the same keys;
  * occurrences (detractor_response, promoter_response, high_severity_ticket,
    competitor_mentioned) are named by what caused them (a response id, a ticket id, a
    ticket or response and the competitor).
"""

from __future__ import annotations

from typing import Any

from services.scoring.config import Scorecard
from services.scoring.measures import (
    onboarding_start,
    rate_per_day,
    renewal_day,
    ticket_ratio,
    usage_ratio,
)
from services.scoring.model import (
    DAY,
    USAGE_RECENT_HALF_LIFE,
    Model,
    active_users,
    moment,
)
from services.scoring.signal_types import EXPANSION_TYPES
from shared.account_facts import LifecycleStage, PaymentStatus
from shared.events import Factor, RiskSignalPayload, Severity, SignalKind, SignalStatus

# Signals about the score itself; told only when no more specific signal explains the step.
DERIVED_TYPES = frozenset({"band_dropped", "score_drop"})
BAND_RANK = {"red": 0, "yellow": 1, "green": 2}
USAGE_MIN_HISTORY_DAYS = 14.0
TICKET_MIN_HISTORY_DAYS = 14.0
PLAN_LIMIT_MIN_HISTORY_DAYS = 3.0
SEATS_WINDOW_DAYS = 30.0


# --- conditions: one step of the path ---------------------------------------------------------


def _set(model: Model, signal_type: str, on: bool, reference: Any = None) -> None:
    active = model.active
    if on:
        if signal_type not in active:
            episode = model.episodes.get(signal_type, 0) + 1
            model.episodes[signal_type] = episode
            active[signal_type] = [episode, reference, model.clock]
    elif signal_type in active:
        del active[signal_type]


def usage_ratio_now(model: Model, now: float) -> float | None:
    found = usage_ratio(model, now, USAGE_MIN_HISTORY_DAYS)
    return None if found is None else found[0]


def monthly_events(model: Model, now: float) -> float | None:
    if model.first_usage is None or now - model.first_usage < PLAN_LIMIT_MIN_HISTORY_DAYS * DAY:
        return None
    return rate_per_day(model.u_recent, now, USAGE_RECENT_HALF_LIFE, now - model.first_usage) * 30


def champion_state(model: Model, card: Scorecard, now: float) -> str | None:
    """ "replaced" (a new champion not active yet), "inactive", or None."""
    champion = model.facts.champion_user_id
    if champion is None:
        return None
    if model.champion_previous is not None and model.champion_seen is None:
        return "replaced"
    window = card.signals.champion_change.inactive_days * DAY
    last = model.champion_seen if model.champion_seen is not None else model.champion_changed_at
    if last is None or model.last_usage is None:
        return None
    if last < now - window and model.last_usage >= now - window:
        return "inactive"  # others use the product; the champion does not
    return None


def renewal_state(model: Model, card: Scorecard, now: float, band: str | None) -> str | None:
    """The renewal date (ISO) when a renewal is near and health is not green, else None."""
    renewal = model.facts.renewal_date
    if renewal is None or band is None or band == "green":
        return None
    due = renewal_day(renewal)
    within = card.signals.renewal_at_risk.within_days * DAY
    if model.renewed_at is not None and model.renewed_at >= due - within:
        return None
    if -within <= due - now <= within:
        return renewal.isoformat()
    return None


def onboarding_state(model: Model, card: Scorecard, now: float) -> float | None:
    """The onboarding start when the account is behind schedule, else None."""
    if not card.milestones or model.facts.lifecycle_stage is not LifecycleStage.ONBOARDING:
        return None
    start = onboarding_start(model)
    if start is None:
        return None
    began = start[0]
    if model.milestone_at is not None and model.milestone_at >= began - DAY:
        return None
    return began if now - began >= card.signals.onboarding_behind.day * DAY else None


def update_conditions(
    model: Model, card: Scorecard, before_band: str | None, score: float | None, band: str | None
) -> None:
    """Start or end each condition's episode for the model's current step."""
    now = model.clock
    assert now is not None
    rules = card.signals
    active = model.active
    _set(model, "entered_red", band == "red")

    if "band_dropped" in active:
        _set(model, "band_dropped", band is not None and BAND_RANK[band] < active["band_dropped"][1])
    elif band is not None and before_band is not None and BAND_RANK[band] < BAND_RANK[before_band]:
        _set(model, "band_dropped", True, BAND_RANK[before_band])

    if score is not None:
        if "score_drop" in active:
            _set(model, "score_drop", score < active["score_drop"][1] - rules.score_drop.recovered_within)
        else:
            peak = max((p for p in model.peaks[1:] if p is not None), default=score)
            _set(model, "score_drop", peak - score >= rules.score_drop.points, peak)

    ratio = usage_ratio_now(model, now)
    if "usage_decline" in active:
        _set(model, "usage_decline", ratio is None or ratio < rules.usage_decline.recover_ratio)
    else:
        _set(model, "usage_decline", ratio is not None and ratio < rules.usage_decline.below_ratio)

    tickets = ticket_ratio(model, now, TICKET_MIN_HISTORY_DAYS)
    if "ticket_spike" in active:
        _set(model, "ticket_spike", tickets is not None and tickets[0] >= rules.ticket_spike.recover_ratio)
    else:
        _set(
            model,
            "ticket_spike",
            tickets is not None
            and tickets[0] >= rules.ticket_spike.ratio
            and tickets[1] >= rules.ticket_spike.min_recent_tickets,
        )

    status = model.facts.payment_status
    _set(
        model,
        "payment_issue",
        status in (PaymentStatus.FAILED, PaymentStatus.PAST_DUE),
        status.value if status else None,
    )
    _set(model, "champion_change", champion_state(model, card, now) is not None, model.facts.champion_user_id)
    renewal = renewal_state(model, card, now, band)
    if "renewal_at_risk" in active and active["renewal_at_risk"][1] != renewal:
        del active["renewal_at_risk"]  # another renewal date: another episode
    _set(model, "renewal_at_risk", renewal is not None, renewal)
    _set(model, "onboarding_behind", onboarding_state(model, card, now) is not None)

    seats = model.facts.seats
    share = None
    if seats:
        share = active_users(model, now - SEATS_WINDOW_DAYS * DAY)[0] / seats
    threshold = (
        rules.seats_nearly_full.recover_ratio
        if "seats_nearly_full" in active
        else rules.seats_nearly_full.ratio
    )
    _set(model, "seats_nearly_full", share is not None and share >= threshold, seats)

    limit = model.facts.plan_event_limit
    monthly = monthly_events(model, now) if limit else None
    threshold = (
        rules.usage_near_plan_limit.recover_ratio
        if "usage_near_plan_limit" in active
        else rules.usage_near_plan_limit.ratio
    )
    _set(
        model,
        "usage_near_plan_limit",
        monthly is not None and limit is not None and monthly >= threshold * limit,
        limit,
    )


# --- what holds now, by key ------------------------------------------------------------------


def current(model: Model, account_id: str, card: Scorecard) -> dict[str, list[str]]:
    """Signal type -> the keys of its occurrences that hold now. A churned account has none."""
    if model.churned:
        return {}
    held: dict[str, list[str]] = {}
    for signal_type, (episode, reference, _) in model.active.items():
        if signal_type == "renewal_at_risk":
            held[signal_type] = [f"renewal_at_risk:{account_id}:{reference}:{episode}"]
        else:
            held[signal_type] = [f"{signal_type}:{account_id}:{episode}"]
    if model.detractors:
        held["detractor_response"] = [f"detractor:{account_id}:{i[0]}" for i in model.detractors]
    if model.promoters:
        held["promoter_response"] = [f"promoter:{account_id}:{i[0]}" for i in model.promoters]
    if model.mentions:
        held["competitor_mentioned"] = [
            f"competitor:{account_id}:{m[1]}:{m[2]}:{m[0].lower()}" for m in model.mentions
        ]
    severe = sorted(tid for tid, t in model.tickets.items() if t[4] and t[0] not in ("solved", "closed"))
    if severe:
        held["high_severity_ticket"] = [f"high_severity_ticket:{account_id}:{tid}" for tid in severe]
    for disabled in card.signals.disabled:
        held.pop(disabled, None)
    return held


# --- the payload a CSM reads -------------------------------------------------------------------


def _iso(seconds: float | None) -> str | None:
    return moment(seconds).isoformat() if seconds is not None else None


def _quote(text: str | None) -> str:
    return f': "{text}"' if text else ""


def _by_key(items: list[list[Any]], key: str) -> list[Any]:
    response_id = key.split(":", 2)[2]
    return next((i for i in items if i[0] == response_id), items[-1])


def raised(
    signal_type: str,
    key: str,
    model: Model,
    card: Scorecard,
    account_id: str,
    shown: tuple[float | None, str | None],
    previous: tuple[float | None, str | None],
    factors: list[Factor],
) -> RiskSignalPayload:
    """The `raised` payload of one occurrence, with the evidence a CSM needs to act."""
    now = model.clock
    assert now is not None
    score, band = shown
    summary, severity, evidence = _words(signal_type, key, model, card, now, score, band, previous, factors)
    return RiskSignalPayload(
        signal_type=signal_type,
        kind=SignalKind.EXPANSION if signal_type in EXPANSION_TYPES else SignalKind.RISK,
        status=SignalStatus.RAISED,
        severity=severity,
        dedupe_key=key,
        summary=summary,
        score=score,
        previous_score=previous[0],
        band=band,
        previous_band=previous[1],
        segment=model.segment,
        factors=factors,
        evidence=evidence,
    )


def churn_risk(
    key: str,
    model: Model,
    account_id: str,
    shown: tuple[float | None, str | None],
    previous: tuple[float | None, str | None],
    factors: list[Factor],
    probability: float,
    threshold: float,
    model_version: int,
) -> RiskSignalPayload:
    """The live model's probability reached its alert threshold: the evidence is its largest
    contributions in words."""
    top = [f.detail for f in factors if f.contribution < 0] or [f.detail for f in factors]
    return RiskSignalPayload(
        signal_type="churn_risk",
        kind=SignalKind.RISK,
        status=SignalStatus.RAISED,
        severity=Severity.HIGH,
        dedupe_key=key,
        summary=f"churn risk {probability:.0%} (alert threshold {threshold:.0%})"
        + (f": {top[0]}" if top else ""),
        score=shown[0],
        previous_score=previous[0],
        band=shown[1],
        previous_band=previous[1],
        segment=model.segment,
        factors=factors,
        evidence={
            "churn_probability": round(probability, 4),
            "alert_threshold": round(threshold, 4),
            "top_contributions": top,
            "model_version": model_version,
            "at": _iso(model.clock),
        },
    )


def cleared(
    signal_type: str,
    last_key: str,
    model: Model,
    account_id: str,
    shown: tuple[float | None, str | None],
    previous: tuple[float | None, str | None],
    factors: list[Factor],
) -> RiskSignalPayload:
    reason = "the account churned" if model.churned else "the condition no longer holds"
    return RiskSignalPayload(
        signal_type=signal_type,
        kind=SignalKind.EXPANSION if signal_type in EXPANSION_TYPES else SignalKind.RISK,
        status=SignalStatus.CLEARED,
        severity=Severity.LOW,
        dedupe_key=f"{last_key}:cleared",
        summary=f"{signal_type.replace('_', ' ')} cleared: {reason}",
        score=shown[0],
        previous_score=previous[0],
        band=shown[1],
        previous_band=previous[1],
        segment=model.segment,
        factors=factors,
        evidence={"cleared_key": last_key, "reason": reason, "at": _iso(model.clock)},
    )


def _words(
    signal_type: str,
    key: str,
    model: Model,
    card: Scorecard,
    now: float,
    score: float | None,
    band: str | None,
    previous: tuple[float | None, str | None],
    factors: list[Factor],
) -> tuple[str, Severity, dict[str, Any]]:
    rules = card.signals
    worst = [f.detail for f in factors if f.value is not None][:3]
    # The payload carries the score, band and factors in fields of their own: evidence holds
    # only what is particular to this signal, so a survey answer is never mistaken for health.
    was = f" (was {previous[1]}, {previous[0]:g})" if previous[0] is not None and previous[1] else ""
    if signal_type == "entered_red":
        return (
            f"turned red: health {score:g}{was}; {worst[0] if worst else 'no factors'}",
            Severity.HIGH,
            {},
        )
    if signal_type == "band_dropped":
        return (
            f"health dropped to {band}: {score:g}{was}; {worst[0] if worst else ''}".rstrip("; "),
            Severity.MEDIUM,
            {},
        )
    if signal_type == "score_drop":
        peak = model.active.get("score_drop", [0, score])[1]
        drop = (peak or 0) - (score or 0)
        return (
            f"health fell {drop:.0f} points within {rules.score_drop.within_days:.0f} days "
            f"({peak:g} → {score:g}); {worst[0] if worst else ''}".rstrip("; "),
            Severity.HIGH if drop >= 2 * rules.score_drop.points else Severity.MEDIUM,
            {"peak": peak, "drop": round(drop, 1), "within_days": rules.score_drop.within_days},
        )
    if signal_type == "usage_decline":
        found = usage_ratio(model, now, USAGE_MIN_HISTORY_DAYS)
        ratio, recent, baseline = found if found else (0.0, 0.0, 0.0)
        return (
            f"product usage down {1 - ratio:.0%} vs the account's 4-week baseline "
            f"({recent:,.0f} events a week against {baseline:,.0f})",
            Severity.HIGH if ratio < 0.3 else Severity.MEDIUM,
            {
                "usage_ratio": round(ratio, 3),
                "events_per_week": round(recent, 1),
                "baseline_events_per_week": round(baseline, 1),
            },
        )
    if signal_type == "ticket_spike":
        spike = ticket_ratio(model, now, TICKET_MIN_HISTORY_DAYS)
        ratio, recent = spike if spike else (0.0, 0.0)
        subjects = [t[5] for t in model.tickets.values() if t[5] and t[0] not in ("solved", "closed")][:5]
        return (
            f"support tickets at {ratio:.1f}x the account's usual rate ({recent:.1f} in about a week)",
            Severity.MEDIUM,
            {
                "ticket_ratio": round(ratio, 2),
                "recent_tickets": round(recent, 1),
                "open_ticket_subjects": subjects,
            },
        )
    if signal_type == "high_severity_ticket":
        ticket_id = key.split(":", 2)[2]
        status, priority, opened, updated, _, subject = model.tickets[ticket_id]
        return (
            f"{priority} ticket {ticket_id} open{_quote(subject)}",
            Severity.HIGH,
            {
                "ticket_id": ticket_id,
                "subject": subject,
                "priority": priority,
                "status": status,
                "opened_at": _iso(opened),
                "updated_at": _iso(updated),
            },
        )
    if signal_type in ("detractor_response", "promoter_response"):
        items = model.detractors if signal_type == "detractor_response" else model.promoters
        response_id, survey_type, answer, at, user, comment = _by_key(items, key)
        label = survey_type.upper()
        if signal_type == "promoter_response":
            return (
                f"NPS promoter (score {answer}): an advocacy candidate{_quote(comment)}",
                Severity.LOW,
                {
                    "response_id": response_id,
                    "survey_type": survey_type,
                    "answer": answer,
                    "comment": comment,
                    "respondent": user,
                    "submitted_at": _iso(at),
                },
            )
        word = "detractor" if survey_type == "nps" else "low score"
        return (
            f"{label} {word} (score {answer}){_quote(comment)}",
            Severity.HIGH if survey_type == "nps" and answer <= 4 else Severity.MEDIUM,
            {
                "response_id": response_id,
                "survey_type": survey_type,
                "answer": answer,
                "comment": comment,
                "respondent": user,
                "submitted_at": _iso(at),
            },
        )
    if signal_type == "competitor_mentioned":
        _, _, source, source_id, _ = key.split(":", 4)
        mention = next(
            (
                m
                for m in model.mentions
                if m[1] == source and m[2] == source_id and key.endswith(":" + m[0].lower())
            ),
            model.mentions[-1],
        )
        competitor, source, source_id, at, text = mention
        where = f"ticket {source_id}" if source == "ticket" else "a survey comment"
        return (
            f"competitor {competitor} named in {where}{_quote(text)}",
            Severity.MEDIUM,
            {
                "competitor": competitor,
                "source": source,
                "source_id": source_id,
                "excerpt": text,
                "mentioned_at": _iso(at),
            },
        )
    if signal_type == "payment_issue":
        status = model.facts.payment_status
        words = "invoice past due" if status is PaymentStatus.PAST_DUE else "payment failed"
        return (
            words,
            Severity.HIGH if status is PaymentStatus.PAST_DUE else Severity.MEDIUM,
            {"payment_status": status.value if status else None},
        )
    if signal_type == "champion_change":
        state = champion_state(model, card, now)
        champion = model.facts.champion_user_id
        last = model.champion_seen
        if state == "replaced":
            words = (f"champion changed from {model.champion_previous} to {champion}; "
                     "the new champion is not active yet")
        else:
            since = (
                f"last active {(now - last) / DAY:.0f} days ago"
                if last is not None
                else "not active since named"
            )
            words = f"champion {champion} has gone quiet ({since}) while the team keeps using the product"
        return (
            words,
            Severity.HIGH,
            {
                "champion": champion,
                "previous_champion": model.champion_previous,
                "champion_last_active_at": _iso(last),
                "reason": state,
            },
        )
    if signal_type == "renewal_at_risk":
        renewal = model.facts.renewal_date
        days = (renewal_day(renewal) - now) / DAY if renewal else 0.0
        when = f"in {days:.0f} days" if days >= 0 else f"{-days:.0f} days ago"
        return (
            f"renewal {when} ({renewal}) while health is {band} ({score:g})",
            Severity.HIGH if band == "red" else Severity.MEDIUM,
            {"renewal_date": renewal.isoformat() if renewal else None, "days_to_renewal": round(days, 1)},
        )
    if signal_type == "onboarding_behind":
        start = onboarding_start(model)
        day = (now - start[0]) / DAY if start else 0.0
        return (
            f"onboarding behind: day {day:.0f} and no value milestone yet "
            f"(target: by day {rules.onboarding_behind.day:.0f})",
            Severity.MEDIUM,
            {
                "onboarding_started_at": _iso(start[0]) if start else None,
                "day": round(day, 1),
                "milestones": card.milestones,
            },
        )
    if signal_type == "seats_nearly_full":
        seats = model.facts.seats or 0
        estimate, exact = active_users(model, now - SEATS_WINDOW_DAYS * DAY)
        about = "" if exact else "about "
        return (
            f"{about}{estimate:.0f} of {seats} seats in use in the last 30 days: room to expand",
            Severity.LOW,
            {
                "active_users": round(estimate, 1),
                "seats": seats,
                "share": round(estimate / seats, 3) if seats else None,
            },
        )
    if signal_type == "usage_near_plan_limit":
        limit = model.facts.plan_event_limit or 0
        monthly = monthly_events(model, now) or 0.0
        return (
            f"on pace for {monthly:,.0f} tracked events per 30 days against a plan limit of {limit:,}",
            Severity.LOW,
            {
                "events_per_30_days": round(monthly),
                "plan_event_limit": limit,
                "share": round(monthly / limit, 3) if limit else None,
            },
        )
    return signal_type.replace("_", " "), Severity.MEDIUM, {}
