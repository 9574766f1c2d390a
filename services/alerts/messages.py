"""What a CSM reads: the Slack and email renderings of one alert. Pure functions, no I/O.

Every message answers the same questions in the same order: which account, what changed,
why (the top factors in plain words), the evidence, and where to look next.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

from shared.events import Factor, RiskSignalPayload

# Slack Block Kit limits (characters / items), from Slack's reference.
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_FIELDS_MAX = 10
SLACK_BUTTON_TEXT_MAX = 75
SLACK_URL_MAX = 3000
# Slack shows `text` as the notification and where blocks cannot render; keep it a glance.
SLACK_FALLBACK_MAX = 1000

EMAIL_SUBJECT_MAX = 200
TOP_FACTORS = 3
EVIDENCE_LINES_MAX = 8
EVIDENCE_VALUE_MAX = 500


@dataclass(frozen=True)
class AlertView:
    """Everything a message needs about one alert, loaded by the dispatcher."""

    alert_id: int
    account_id: str
    account_name: str | None
    signal: RiskSignalPayload
    occurred_at: datetime
    slack_channel: str | None = None

    @property
    def account_label(self) -> str:
        return self.account_name or self.account_id


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


# --- shared wording -------------------------------------------------------------------------


def health_url(public_url: str, account_id: str) -> str:
    return f"{public_url.rstrip('/')}/v1/accounts/{quote(account_id, safe='')}/health"


def title(view: AlertView) -> str:
    return _one_line(f"{view.account_label}: {view.signal.summary}")


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
    """'Health score 42 (red, was yellow)' from whatever of score and bands the signal has."""
    parts: list[str] = []
    if signal.score is not None:
        parts.append(f"Health score {signal.score:.0f}")
    band = signal.band.value if signal.band else None
    previous = signal.previous_band.value if signal.previous_band else None
    if band and previous and previous != band:
        parts.append(f"({band}, was {previous})")
    elif band:
        parts.append(f"({band})")
    return " ".join(parts) if parts else None


def evidence_lines(evidence: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs in a stable order: 'detractor_comment' -> 'Detractor comment'."""
    lines: list[tuple[str, str]] = []
    for key in list(evidence)[:EVIDENCE_LINES_MAX]:
        value = evidence[key]
        if value is None or value == "":
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        label = key.replace("_", " ").strip().capitalize() or key
        lines.append((_truncate(_one_line(label), 100), _truncate(text, EVIDENCE_VALUE_MAX)))
    return lines


# --- Slack ----------------------------------------------------------------------------------


def slack_escape(text: str) -> str:
    """Slack treats &, < and > as control characters in mrkdwn; user text must not link or ping."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_slack(view: AlertView, public_url: str) -> dict[str, Any]:
    """An incoming-webhook body: `text` fallback plus Block Kit blocks, all within Slack's limits."""
    signal = view.signal
    url = health_url(public_url, view.account_id)
    change = change_line(signal)

    what_changed = f"*What changed*\n{slack_escape(signal.summary)}"
    if change:
        what_changed += f"\n{slack_escape(change)}"
    fields = [
        f"*Severity*\n{slack_escape(signal.severity.value)}",
        f"*Signal*\n{slack_escape(signal.signal_type)}",
    ]
    if signal.score is not None:
        fields.append(f"*Health score*\n{signal.score:.0f}")
    if signal.band is not None:
        fields.append(f"*Band*\n{signal.band.value}")

    blocks: list[dict[str, Any]] = [
        {"type": "header",
         "text": {"type": "plain_text", "text": _truncate(title(view), SLACK_HEADER_MAX), "emoji": False}},
        {"type": "section",
         "text": _mrkdwn(what_changed, SLACK_SECTION_MAX),
         "fields": [_mrkdwn(f, SLACK_FIELD_MAX) for f in fields[:SLACK_FIELDS_MAX]]},
    ]
    factors = top_factors(signal.factors)
    if factors:
        why = "*Why*\n" + "\n".join(f"• {slack_escape(_one_line(f.detail))}" for f in factors)
        blocks.append({"type": "section", "text": _mrkdwn(why, SLACK_SECTION_MAX)})
    evidence = evidence_lines(signal.evidence)
    if evidence:
        lines = "\n".join(f"*{slack_escape(label)}:* {_slack_quote(value)}" for label, value in evidence)
        blocks.append({"type": "section", "text": _mrkdwn(f"*Evidence*\n{lines}", SLACK_SECTION_MAX)})
    context = [f"Occurred {view.occurred_at:%Y-%m-%d %H:%M} UTC",
               f"Account `{slack_escape(view.account_id)}`"]
    if view.slack_channel:
        context.append(f"For {slack_escape(view.slack_channel)}")
    blocks.append({"type": "context", "elements": [_mrkdwn(c, SLACK_FIELD_MAX) for c in context]})
    if len(url) <= SLACK_URL_MAX:
        blocks.append({"type": "actions", "elements": [{
            "type": "button",
            "text": {"type": "plain_text", "text": "Open account health"[:SLACK_BUTTON_TEXT_MAX]},
            "url": url,
        }]})

    fallback = title(view)
    if change:
        fallback += f" — {change}"
    body: dict[str, Any] = {
        "text": _truncate(slack_escape(f"{fallback} — {url}"), SLACK_FALLBACK_MAX),
        "blocks": blocks,
    }
    if view.slack_channel:
        # Honoured by legacy webhooks; app-bound webhooks post to their own channel anyway.
        body["channel"] = view.slack_channel
    return body


def _mrkdwn(text: str, limit: int) -> dict[str, str]:
    return {"type": "mrkdwn", "text": _truncate_escaped(text, limit)}


def _slack_quote(value: str) -> str:
    lines = value.splitlines() or [""]
    if len(lines) == 1:
        return slack_escape(lines[0])
    # A multi-line comment becomes a block quote, every line of it.
    return "\n" + "\n".join(f">{slack_escape(line)}" for line in lines)


def _truncate_escaped(text: str, limit: int) -> str:
    """Truncate without leaving half an entity such as `&am` behind."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + "…"


# --- email ----------------------------------------------------------------------------------


def render_email(view: AlertView, public_url: str) -> EmailContent:
    signal = view.signal
    url = health_url(public_url, view.account_id)
    change = change_line(signal)
    factors = top_factors(signal.factors)
    evidence = evidence_lines(signal.evidence)
    subject = _truncate(f"[Churnwatch] {title(view)}", EMAIL_SUBJECT_MAX)

    text_lines = [title(view), "", "What changed:", f"  {signal.summary}"]
    if change:
        text_lines.append(f"  {change}")
    text_lines.append(f"  Severity: {signal.severity.value} ({signal.signal_type})")
    if factors:
        text_lines += ["", "Why:"] + [f"  - {_one_line(f.detail)}" for f in factors]
    if evidence:
        text_lines += ["", "Evidence:"]
        for label, value in evidence:
            text_lines.append(f"  {label}: {value}")
    text_lines += ["", f"Occurred: {view.occurred_at:%Y-%m-%d %H:%M} UTC",
                   f"Account health: {url}", ""]

    e = html.escape
    parts = [f"<h2>{e(title(view))}</h2>", "<h3>What changed</h3>", f"<p>{e(signal.summary)}"]
    if change:
        parts.append(f"<br>{e(change)}")
    parts.append(f"<br>Severity: {e(signal.severity.value)} ({e(signal.signal_type)})</p>")
    if factors:
        parts.append("<h3>Why</h3><ul>" + "".join(f"<li>{e(f.detail)}</li>" for f in factors) + "</ul>")
    if evidence:
        parts.append("<h3>Evidence</h3><ul>" + "".join(
            f"<li><strong>{e(label)}:</strong> {e(value)}</li>" for label, value in evidence) + "</ul>")
    parts.append(f"<p>Occurred {e(f'{view.occurred_at:%Y-%m-%d %H:%M}')} UTC · "
                 f'<a href="{e(url)}">Open account health</a></p>')
    body_html = ("<!DOCTYPE html><html><body>" + "\n".join(parts) + "</body></html>")
    return EmailContent(subject=subject, text="\n".join(text_lines), html=body_html)


def build_email(
    content: EmailContent, *, sender: str, recipient: str, message_id: str, date: datetime
) -> EmailMessage:
    """A multipart/alternative message (plain text first, HTML preferred by clients that can)."""
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(date)
    # Stable per delivery: if a crash makes us send twice, mail clients can fold the copies.
    message["Message-ID"] = message_id
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    return message


def message_id(alert_id: int, delivery_id: int, sender: str) -> str:
    domain = sender.rpartition("@")[2] or "churnwatch.local"
    return f"<churnwatch.alert-{alert_id}.delivery-{delivery_id}@{domain}>"


# --- helpers --------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
