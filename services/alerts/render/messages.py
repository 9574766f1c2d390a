"""What a CSM reads: the Slack and email renderings of an alert, and of a daily digest. Pure.

Every alert message answers the same questions in the same order: which account (linked),
what changed (band, score and its delta), why (the top factors in plain words), the
evidence, what to do next (the playbook), and buttons to act on it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from services.alerts.delivery.outbox import Purpose
from services.alerts.routing.config import rank
from shared.events import Factor, RiskSignalPayload, Severity, SignalKind
from shared.templates import template_environment

# Slack Block Kit limits (characters / items), from Slack's reference.
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_FIELDS_MAX = 10
SLACK_BLOCKS_MAX = 50
SLACK_BLOCK_ID_MAX = 255
SLACK_BUTTON_TEXT_MAX = 75
SLACK_URL_MAX = 3000
# Slack shows `text` as the notification and where blocks cannot render; keep it a glance.
SLACK_FALLBACK_MAX = 1000

EMAIL_SUBJECT_MAX = 200
TOP_FACTORS = 3
EVIDENCE_LINES_MAX = 8
EVIDENCE_VALUE_MAX = 500
DIGEST_ACCOUNTS_MAX = 40  # Slack: a header, one section per account, a closing line, under 50 blocks
MINUS = "\u2212"  # typographic minus: "-17" reads as a hyphen in some fonts
_templates = template_environment("services.alerts.render")  # the email HTML
RESENT_NOTE = "Sent again after an interruption: you may already have seen this message."


@dataclass(frozen=True)
class ActionLinks:
    acknowledge: str
    snooze: str
    feedback: str
    resolve: str


@dataclass(frozen=True)
class ReasonLine:
    """One reason of an alert, as its message lists it."""

    severity: Severity
    signal_type: str
    summary: str
    clearing: bool = False  # cleared, waiting out the hysteresis


@dataclass(frozen=True)
class AlertView:
    """Everything one alert message needs, loaded by the dispatcher."""

    alert_id: int
    account_id: str
    account_name: str | None
    signal: RiskSignalPayload  # the occurrence this message is about
    occurred_at: datetime
    account_url: str
    next_step: str
    purpose: Purpose = Purpose.ALERT
    occurrences: int = 1
    first_seen_at: datetime | None = None  # event time of the occurrence that opened the alert
    state: str = "open"
    slack_channel: str | None = None
    mention: str | None = None
    links: ActionLinks | None = None
    resent: bool = False
    note: str | None = None  # e.g. why this escalated, or that a snooze ended
    # Every reason active in the alert, worst first (the first is the one `signal` is about
    # unless this is a follow-up about another); listed when there are several.
    reasons: tuple[ReasonLine, ...] = ()
    # The Slack app is set up (bot token and signing secret): buttons call back
    # /v1/slack/interactions instead of opening signed links.
    interactive: bool = False
    activity: str | None = None  # who last did what to the alert, and when
    mrr: float | None = None  # the account's monthly recurring revenue, in its billing currency

    @property
    def account_label(self) -> str:
        return self.account_name or self.account_id

    @property
    def other_reasons(self) -> int:
        return max(len(self.reasons) - 1, 0)


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class DigestLine:
    severity: Severity
    summary: str
    occurred_at: datetime
    # digest, cooldown (raised again soon after a notification), new_reason (joined an open alert)
    reason: str
    state: str


@dataclass(frozen=True)
class DigestAccount:
    account_id: str
    account_name: str | None
    account_url: str
    next_step: str
    lines: list[DigestLine] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.account_name or self.account_id

    @property
    def worst(self) -> Severity:
        return max((line.severity for line in self.lines), key=rank)


# --- shared wording ----------------------------------------------------------------------------


def health_url(public_url: str, account_id: str) -> str:
    return f"{public_url.rstrip('/')}/v1/accounts/{quote(account_id, safe='')}/health"


def account_url(template: str | None, public_url: str, account_id: str) -> str:
    if template:
        return template.replace("{account_id}", quote(account_id, safe=""))
    return health_url(public_url, account_id)


def headline(view: AlertView) -> str:
    """'Acme Corp turned red: ...' (a summary that starts lowercase reads on from the name),
    'Acme Corp: NPS detractor (score 3)' otherwise."""
    summary = _one_line(view.signal.summary)
    joined = (
        f"{view.account_label} {summary}" if summary[:1].islower() else f"{view.account_label}: {summary}"
    )
    prefix = {
        Purpose.UPDATE: "Update: ",
        Purpose.REMINDER: "Snooze ended: ",
        Purpose.ESCALATION: "Escalated: ",
    }.get(view.purpose, "")
    more = view.other_reasons
    suffix = f" (and {more} more reason{'s' * (more != 1)})" if more else ""
    return prefix + joined + suffix


def reason_words(reason: ReasonLine) -> str:
    """'High · detractor response: NPS detractor (score 2)' (and whether it is clearing)."""
    words = f"{reason.severity.value.capitalize()} · {reason.signal_type.replace('_', ' ')}: "
    words += _one_line(reason.summary)
    return words + (" (cleared, confirming)" if reason.clearing else "")


def top_factors(factors: Sequence[Factor], limit: int = TOP_FACTORS) -> list[Factor]:
    """The factors that cost the most points (weight x 100 - contribution), biggest first.

    Factors without data (value None) explain nothing about this score and are left out.
    """

    def points_lost(factor: Factor) -> float:
        if factor.value is None:
            return float("-inf")
        return factor.weight * 100 - factor.contribution

    ranked = sorted(factors, key=points_lost, reverse=True)  # sorted() is stable for ties
    return [f for f in ranked if f.value is not None and f.detail.strip()][:limit]


def change_line(signal: RiskSignalPayload) -> str | None:
    """'Health 38 (-17 from 55) · red, was yellow' (a true minus sign) from the score and bands."""
    parts: list[str] = []
    if signal.score is not None:
        score = f"Health {signal.score:.0f}"
        if signal.previous_score is not None:
            delta = round(signal.score - signal.previous_score)
            sign = MINUS if delta < 0 else "+"
            score += f" ({sign}{abs(delta)} from {signal.previous_score:.0f})" if delta else " (unchanged)"
        parts.append(score)
    band = signal.band.value if signal.band else None
    previous = signal.previous_band.value if signal.previous_band else None
    if band and previous and previous != band:
        parts.append(f"{band}, was {previous}")
    elif band:
        parts.append(band)
    return " · ".join(parts) if parts else None


def _hidden_evidence(key: str) -> bool:
    # Ids and provenance are for engineers (the API shows them); a CSM reads the rest.
    return key.endswith("_id") or key.startswith(("caused_by", "_"))


# Evidence keys whose plain label would read wrong, and keys whose values name signal types.
EVIDENCE_LABELS = {
    "also": "Also raised",
    "survey_type": "Survey",
    "excerpt": "Quote",
    "top_contributions": "Why",  # churn_risk: the model's largest contributions, in words
    "usage_ratio": "Usage against its usual level",
    "events_per_week": "Events a week",
    "baseline_events_per_week": "Usual events a week",
    "ticket_ratio": "Tickets against the usual rate",
    "share": "Share",
}
SIGNAL_TYPE_LISTS = frozenset({"also"})
# Fractions: 0.72 reads "72%".
PERCENT_EVIDENCE = frozenset({"churn_probability", "alert_threshold", "usage_ratio", "share"})
TIMES_EVIDENCE = frozenset({"ticket_ratio"})  # multiples: 3.2 reads "3.2 times"
SENTENCE_LISTS = frozenset({"top_contributions"})  # items with commas of their own: "; " between


def evidence_lines(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs in a stable order, in words: 'ticket_subject' -> 'Ticket subject',
    a list as a comma-separated phrase, a time as 'YYYY-MM-DD HH:MM UTC' (never raw JSON)."""
    lines: list[tuple[str, str]] = []
    for key in list(evidence):
        if len(lines) >= EVIDENCE_LINES_MAX:
            break
        value = evidence[key]
        if value is None or value == "" or value == [] or _hidden_evidence(key):
            continue
        text = _evidence_words(key, value)
        label = EVIDENCE_LABELS.get(key) or key.replace("_", " ").strip().capitalize() or key
        lines.append((_truncate(_one_line(label), 100), _truncate(text, EVIDENCE_VALUE_MAX)))
    return lines


def _evidence_words(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if key in PERCENT_EVIDENCE:
            return f"{value:.0%}"
        if key in TIMES_EVIDENCE:
            return f"{value:,.1f} times"
        return f"{value:,.4g}" if abs(value) < 1e15 else f"{value:.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, str):
        if key == "survey_type":
            return value.upper()
        return _time_words(value) or value
    if isinstance(value, (list, tuple)):
        items = [_evidence_words(key, item) for item in value if item is not None and item != ""]
        if key in SIGNAL_TYPE_LISTS:
            items = [item.replace("_", " ") for item in items]
        return ("; " if key in SENTENCE_LISTS else ", ").join(items)
    if isinstance(value, dict):
        pairs = [(str(k), v) for k, v in value.items() if v is not None]
        return "; ".join(f"{k.replace('_', ' ')}: {_evidence_words(k, v)}" for k, v in pairs)
    return str(value)


def _time_words(text: str) -> str | None:
    """An ISO-8601 instant as a CSM reads it, or None when the text is not one."""
    if len(text) < 16 or text[4:5] != "-" or text[10:11] != "T":
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _facts_line(view: AlertView) -> str:
    signal = view.signal
    kind = "Expansion opportunity" if signal.kind is SignalKind.EXPANSION else "Churn risk"
    parts = [kind, f"severity {signal.severity.value}", signal.signal_type.replace("_", " ")]
    if signal.segment:
        parts.append(f"segment {signal.segment}")
    if view.mrr is not None:
        parts.append(f"MRR {mrr_words(view.mrr)}")
    return " · ".join(parts)


def mrr_words(mrr: float) -> str:
    """'1,250' or '1.2M': the billing currency is the account's own, so no symbol is guessed."""
    return f"{mrr / 1e6:,.1f}M" if mrr >= 1e6 else f"{mrr:,.0f}"


def _history_line(view: AlertView) -> str:
    when = f"{view.occurred_at:%Y-%m-%d %H:%M} UTC"
    if len(view.reasons) > 1 and view.first_seen_at is not None:
        return (
            f"Open since {view.first_seen_at:%Y-%m-%d %H:%M} UTC: {view.occurrences} signals, "
            f"{len(view.reasons)} reasons (latest {when})"
        )
    if view.occurrences > 1 and view.first_seen_at is not None:
        return f"Seen {view.occurrences} times since {view.first_seen_at:%Y-%m-%d %H:%M} UTC (latest {when})"
    return f"Occurred {when}"


# --- Slack -----------------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack treats &, < and > as control characters in mrkdwn; user text must not link or ping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    return (
        f"<{url}|{slack_escape(label).replace('|', '¦')}>"
        if len(url) <= SLACK_URL_MAX
        else slack_escape(label)
    )


def render_slack(view: AlertView) -> dict[str, Any]:
    """A chat.postMessage / incoming-webhook body: `text` fallback plus Block Kit blocks."""
    signal = view.signal
    change = change_line(signal)
    mention = f"<@{view.mention}> " if view.mention else ""
    link = _slack_link(view.account_url, view.account_label)
    what = f"{mention}*{link}* — {slack_escape(_one_line(signal.summary))}"
    if change:
        what += f"\n{slack_escape(change)}"
    if view.note:
        what += f"\n_{slack_escape(_one_line(view.note))}_"
    fields = [
        f"*Severity*\n{signal.severity.value}",
        f"*Signal*\n{slack_escape(signal.signal_type.replace('_', ' '))}",
        f"*Kind*\n{signal.kind.value}",
    ]
    if view.mrr is not None:
        fields.insert(0, f"*MRR*\n{mrr_words(view.mrr)}")
    if signal.score is not None:
        fields.append(f"*Health score*\n{signal.score:.0f}")
    if signal.band is not None:
        fields.append(f"*Band*\n{signal.band.value}")
    if signal.segment:
        fields.append(f"*Segment*\n{slack_escape(signal.segment)}")

    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": _truncate(headline(view), SLACK_HEADER_MAX),
                "emoji": True,
            },
        },
        {
            "type": "section",
            "text": _mrkdwn(what, SLACK_SECTION_MAX),
            "fields": [_mrkdwn(f, SLACK_FIELD_MAX) for f in fields[:SLACK_FIELDS_MAX]],
        },
    ]
    if len(view.reasons) > 1:
        listed = "\n".join(f"• {slack_escape(reason_words(r))}" for r in view.reasons)
        blocks.append(
            {"type": "section", "text": _mrkdwn(f"*Reasons, worst first*\n{listed}", SLACK_SECTION_MAX)}
        )
    factors = top_factors(signal.factors)
    if factors:
        why = "*Why*\n" + "\n".join(f"• {slack_escape(_one_line(f.detail))}" for f in factors)
        blocks.append({"type": "section", "text": _mrkdwn(why, SLACK_SECTION_MAX)})
    evidence = evidence_lines(signal.evidence)
    if evidence:
        lines = "\n".join(f"*{slack_escape(label)}:* {_slack_quote(value)}" for label, value in evidence)
        blocks.append({"type": "section", "text": _mrkdwn(f"*Evidence*\n{lines}", SLACK_SECTION_MAX)})
    blocks.append(
        {
            "type": "section",
            "text": _mrkdwn(f"*Suggested next step*\n{slack_escape(view.next_step)}", SLACK_SECTION_MAX),
        }
    )
    context = [_history_line(view), f"Account `{slack_escape(view.account_id)}`"]
    if view.resent:
        context.append(RESENT_NOTE)
    blocks.append({"type": "context", "elements": [_mrkdwn(c, SLACK_FIELD_MAX) for c in context]})
    if view.activity:
        blocks.append({"type": "context", "elements": [_mrkdwn(view.activity, SLACK_FIELD_MAX)]})
    buttons = [_button("Open account", view.account_url, "open")]
    if view.interactive:
        buttons += interactive_controls(view)
    elif view.links is not None:
        buttons += [
            _button("Acknowledge", view.links.acknowledge, "acknowledge", "primary"),
            _button("Snooze…", view.links.snooze, "snooze"),
            _button("Resolve…", view.links.resolve, "resolve"),
            _button("Not useful?", view.links.feedback, "feedback"),
        ]
    buttons = [b for b in buttons if b is not None]
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"churnwatch-alert-{view.alert_id}"[:SLACK_BLOCK_ID_MAX],
                "elements": buttons,
            }
        )

    fallback = mention + headline(view)
    if change:
        fallback += f" — {change}"
    if view.resent:
        fallback += f" ({RESENT_NOTE})"
    return {
        "text": _truncate(
            slack_escape(fallback) if not mention else mention + slack_escape(fallback[len(mention) :]),
            SLACK_FALLBACK_MAX,
        ),
        "blocks": blocks[:SLACK_BLOCKS_MAX],
    }


SNOOZE_CHOICES = (("1 hour", "1h"), ("4 hours", "4h"), ("1 day", "1d"), ("1 week", "1w"))
_ACTIVITY = {
    "acknowledge": "Acknowledged",
    "snooze": "Snoozed",
    "resolve": "Resolved",
    "feedback": "Marked",
}


def interactive_controls(view: AlertView) -> list[dict[str, Any]]:
    """The Slack app's buttons (action ids read by services/alerts/slack/payloads.py); the
    alert id travels in each `value` and in the actions block's id."""
    alert = str(view.alert_id)
    if view.state == "resolved":
        return []
    controls: list[dict[str, Any]] = []
    if view.state != "acknowledged":
        controls.append(_action_button("Acknowledge", "acknowledge", alert, "primary"))
    controls.append(
        {
            "type": "static_select",
            "action_id": "churnwatch-snooze",
            "placeholder": {"type": "plain_text", "text": "Snooze…"},
            "options": [
                {"text": {"type": "plain_text", "text": label}, "value": f"{alert}:{value}"}
                for label, value in SNOOZE_CHOICES
            ],
        }
    )
    resolve = _action_button("Resolve", "resolve", alert)
    resolve["confirm"] = {
        "title": {"type": "plain_text", "text": "Resolve this alert?"},
        "text": {"type": "plain_text", "text": "It closes until a new signal opens another."},
        "confirm": {"type": "plain_text", "text": "Resolve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    controls += [resolve, _action_button("Not useful", "not_useful", alert)]
    return controls


def _action_button(text: str, action: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text[:SLACK_BUTTON_TEXT_MAX]},
        "action_id": f"churnwatch-{action}",
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def activity_line(action: dict[str, Any] | None) -> str | None:
    """'Acknowledged by <@U0ANNA> at 2026-11-20 10:04 UTC' from the alert's latest action row."""
    if action is None or action["action"] not in _ACTIVITY:
        return None
    actor = str(action["actor"])
    when = f"{action['at']:%Y-%m-%d %H:%M} UTC"
    if action.get("via") == "clock" or actor == "signal":
        # Nobody did it: the signals cleared (the only thing the clock or a signal does here).
        return f"Resolved at {when}: every reason cleared" if action["action"] == "resolve" else None
    who = f"<@{actor.removeprefix('slack:')}>" if actor.startswith("slack:") else slack_escape(actor)
    details = action.get("details") or {}
    what = _ACTIVITY[action["action"]]
    if action["action"] == "snooze" and details.get("until"):
        until = datetime.fromisoformat(str(details["until"]))
        what += f" until {until:%Y-%m-%d %H:%M} UTC"
    elif action["action"] == "feedback":
        what += " useful" if details.get("useful") else " not useful"
    return f"{what} by {who} at {when}"


def _button(text: str, url: str, action: str, style: str | None = None) -> dict[str, Any] | None:
    if len(url) > SLACK_URL_MAX:
        return None
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text[:SLACK_BUTTON_TEXT_MAX]},
        "url": url,
        "action_id": f"churnwatch-{action}",
    }
    if style:
        button["style"] = style
    return button


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _truncate_escaped(text, limit)}


def _slack_quote(value: str) -> str:
    lines = value.splitlines() or [""]
    if len(lines) == 1:
        return slack_escape(lines[0])
    # A multi-line comment becomes a block quote, every line of it.
    return "\n" + "\n".join(f">{slack_escape(line)}" for line in lines)


def _truncate_escaped(text: str, limit: int) -> str:
    """Truncate without leaving half an entity such as `&am` or half a `<url|label>` behind."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    angle = cut.rfind("<")
    if angle != -1 and ">" not in cut[angle:]:
        cut = cut[:angle]
    return cut + "…"


def render_slack_digest(recipient_label: str, accounts: Sequence[DigestAccount], day: str) -> dict[str, Any]:
    ordered = order_digest(accounts)
    total = sum(len(a.lines) for a in ordered)
    title = (
        f"Churnwatch daily digest for {day}: {total} signal{'s' * (total != 1)} on {len(ordered)} "
        f"account{'s' * (len(ordered) != 1)}"
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": _truncate(title, SLACK_HEADER_MAX)}},
        {
            "type": "context",
            "elements": [
                _mrkdwn(f"For {slack_escape(recipient_label)} · most severe first", SLACK_FIELD_MAX)
            ],
        },
    ]
    for account in ordered[:DIGEST_ACCOUNTS_MAX]:
        lines = [
            f"*{_slack_link(account.account_url, account.label)}* — highest severity *{account.worst.value}*"
        ]
        lines += [
            f"• [{line.severity.value}] {slack_escape(_one_line(line.summary))}{_digest_suffix(line)}"
            for line in account.lines
        ]
        lines.append(f"_Next step:_ {slack_escape(account.next_step)}")
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines), SLACK_SECTION_MAX)})
    if len(ordered) > DIGEST_ACCOUNTS_MAX:
        rest = len(ordered) - DIGEST_ACCOUNTS_MAX
        blocks.append(
            {
                "type": "context",
                "elements": [
                    _mrkdwn(
                        f"…and {rest} more account{'s' * (rest != 1)}: "
                        "the email digest and the alerts API list them all.",
                        SLACK_FIELD_MAX,
                    )
                ],
            }
        )
    return {"text": _truncate(title, SLACK_FALLBACK_MAX), "blocks": blocks[:SLACK_BLOCKS_MAX]}


def order_digest(accounts: Sequence[DigestAccount]) -> list[DigestAccount]:
    """Accounts by their most severe signal, then by how many signals, then by name; lines likewise."""
    for account in accounts:
        account.lines.sort(key=lambda line: (-rank(line.severity), line.occurred_at))
    return sorted(accounts, key=lambda a: (-rank(a.worst), -len(a.lines), a.label.lower()))


def _digest_suffix(line: DigestLine) -> str:
    notes = []
    if line.reason == "cooldown":
        notes.append("raised again soon after an earlier alert")
    elif line.reason == "new_reason":
        notes.append("joined the account's open alert")
    if line.state == "resolved":
        notes.append("since resolved")
    elif line.state in ("acknowledged", "snoozed"):
        notes.append(line.state)
    return f" _({'; '.join(notes)})_" if notes else ""


# --- email -----------------------------------------------------------------------------------------


def render_email(view: AlertView) -> EmailContent:
    signal = view.signal
    change = change_line(signal)
    factors = top_factors(signal.factors)
    evidence = evidence_lines(signal.evidence)
    subject = _truncate(f"[Churnwatch] {_one_line(headline(view))}", EMAIL_SUBJECT_MAX)

    text = [headline(view), ""]
    if view.note:
        text += [view.note, ""]
    text += ["What changed", f"  {_one_line(signal.summary)}"]
    if change:
        text.append(f"  {change}")
    text.append(f"  {_facts_line(view)}")
    if len(view.reasons) > 1:
        text += ["", "Reasons, worst first"] + [f"  - {reason_words(r)}" for r in view.reasons]
    if factors:
        text += ["", "Why"] + [f"  - {_one_line(f.detail)}" for f in factors]
    if evidence:
        text += ["", "Evidence"] + [f"  {label}: {value}" for label, value in evidence]
    text += ["", "Suggested next step", f"  {view.next_step}", "", _history_line(view) + ".", ""]
    text.append(f"Open the account:  {view.account_url}")
    if view.links:
        text += [
            f"Acknowledge:       {view.links.acknowledge}",
            f"Snooze:            {view.links.snooze}",
            f"Resolve:           {view.links.resolve}",
            f"Not useful?        {view.links.feedback}",
        ]
    if view.resent:
        text += ["", RESENT_NOTE]
    text.append("")

    buttons = [("Open account", view.account_url)]
    if view.links:
        buttons += [
            ("Acknowledge", view.links.acknowledge),
            ("Snooze", view.links.snooze),
            ("Resolve", view.links.resolve),
            ("Not useful?", view.links.feedback),
        ]
    body_html = _templates.get_template("alert_email.html").render(
        headline=headline(view),
        note=view.note,
        account_url=view.account_url,
        account_label=view.account_label,
        summary=_one_line(signal.summary),
        change=change,
        facts=_facts_line(view),
        reasons=[reason_words(r) for r in view.reasons],
        factors=[f.detail for f in factors],
        evidence=evidence,
        next_step=view.next_step,
        history=_history_line(view),
        buttons=buttons,
        resent_note=RESENT_NOTE if view.resent else None,
    )
    return EmailContent(subject=subject, text="\n".join(text), html=body_html)


def render_email_digest(recipient_label: str, accounts: Sequence[DigestAccount], day: str) -> EmailContent:
    ordered = order_digest(accounts)
    total = sum(len(a.lines) for a in ordered)
    subject = (
        f"[Churnwatch] Daily digest {day}: {total} signal{'s' * (total != 1)} on {len(ordered)} "
        f"account{'s' * (len(ordered) != 1)}"
    )
    text = [subject.removeprefix("[Churnwatch] "), f"For {recipient_label}. Most severe first.", ""]
    shown = []
    for account in ordered:
        text.append(f"{account.label} (highest severity {account.worst.value})  {account.account_url}")
        lines = []
        for line in account.lines:
            note = _digest_suffix(line).strip(" _")
            text.append(f"  - [{line.severity.value}] {_one_line(line.summary)}{' ' + note if note else ''}")
            lines.append({"severity": line.severity.value, "summary": _one_line(line.summary), "note": note})
        text += [f"  Next step: {account.next_step}", ""]
        shown.append({"url": account.account_url, "label": account.label, "worst": account.worst.value,
                      "lines": lines, "next_step": account.next_step})
    body_html = _templates.get_template("digest_email.html").render(
        title=subject.removeprefix("[Churnwatch] "), recipient=recipient_label, accounts=shown
    )
    return EmailContent(subject=_truncate(subject, EMAIL_SUBJECT_MAX), text="\n".join(text), html=body_html)


def build_email(
    content: EmailContent,
    *,
    sender: str,
    recipient: str,
    message_id: str,
    date: datetime,
    in_reply_to: str | None = None,
) -> EmailMessage:
    """A multipart/alternative message (plain text first, HTML preferred by clients that can)."""
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(date)
    # Stable per delivery: if a crash makes us send twice, mail stores and clients fold the copies.
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    return message


def message_id(delivery_key: str, delivery_id: int, sender: str) -> str:
    """The same for every attempt of a delivery, in any process: derived from its ledger key."""
    domain = sender.rpartition("@")[2] or "churnwatch.local"
    digest = hashlib.sha256(delivery_key.encode()).hexdigest()[:16]
    return f"<churnwatch.{delivery_id}.{digest}@{domain}>"


# --- helpers ---------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut + "…"
