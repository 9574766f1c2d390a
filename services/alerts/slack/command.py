"""The answer to `/churnwatch <account>`: the account's health, band, top reasons and open
alert, shown only to whoever asked (`response_type: ephemeral`). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from services.alerts.render.messages import ReasonLine, reason_words, slack_escape
from services.alerts.render.reasons import Reason

USAGE = "Usage: `/churnwatch <account id or name>`, e.g. `/churnwatch acme`."
TOP = 3


@dataclass(frozen=True)
class AccountAnswer:
    account_id: str
    account_name: str | None
    health: dict[str, Any] | None  # scoring's account health, None when it has no score yet
    open_alert: dict[str, Any] | None  # the most severe unresolved alert
    reasons: Sequence[Reason] = ()  # its active reasons, worst first
    health_error: str | None = None  # scoring did not answer


def ephemeral(text: str, blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"response_type": "ephemeral", "text": text}
    if blocks:
        body["blocks"] = blocks
    return body


def not_found(query: str) -> dict[str, Any]:
    return ephemeral(f"No account called `{slack_escape(query)}` is known to Churnwatch. {USAGE}")


def account_answer(answer: AccountAnswer) -> dict[str, Any]:
    label = slack_escape(answer.account_name or answer.account_id)
    lines = [f"*{label}* (`{slack_escape(answer.account_id)}`)"]
    health = answer.health
    if health is not None:
        lines.append(f"Health *{float(health['score']):.0f}*, band *{slack_escape(str(health['band']))}*")
        factors = [str(f) for f in health.get("top_factors") or []][:TOP]
        if factors:
            lines.append("Top reasons:\n" + "\n".join(f"• {slack_escape(f)}" for f in factors))
    elif answer.health_error:
        lines.append(f"Health: not available right now ({slack_escape(answer.health_error)})")
    else:
        lines.append("Health: no score yet")
    alert = answer.open_alert
    if alert is None:
        lines.append("Open alert: none")
    else:
        lines.append(
            f"Open alert #{alert['id']} ({slack_escape(str(alert['state']))}, "
            f"{slack_escape(str(alert['severity']))}): {slack_escape(str(alert['summary']))}"
        )
        listed = list(answer.reasons)[:TOP]
        if listed:
            lines.append("\n".join(f"• {slack_escape(reason_words(_line(r)))}" for r in listed))
    text = "\n".join(lines)
    return ephemeral(text, [{"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}])


def _line(reason: Reason) -> ReasonLine:
    return ReasonLine(
        reason.severity, reason.signal_type, reason.summary, clearing=reason.clearing_since is not None
    )
