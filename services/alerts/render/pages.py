"""The small HTML pages behind action links: a confirmation form (GET) and the result (POST).

Rendered from `templates/` (autoescaped: text from alerts, summaries and names, is escaped);
pages are not cached or indexed and never send the link onward in a Referer header.
"""

from __future__ import annotations

from typing import Any

from services.alerts.links import LinkAction
from shared.templates import template_environment

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
}
SNOOZE_CHOICES = (("24", "1 day"), ("72", "3 days"), ("168", "1 week"), ("336", "2 weeks"))
# The page's title and its button, per action.
_CONFIRM = {
    LinkAction.ACKNOWLEDGE: ("Acknowledge this alert?", "Acknowledge"),
    LinkAction.SNOOZE: ("Snooze this alert", "Snooze"),
    LinkAction.RESOLVE: ("Resolve this alert?", "Resolve"),
    LinkAction.FEEDBACK: ("Was this alert useful?", "Send feedback"),
}

_templates = template_environment("services.alerts.render")


def _about(alert: dict[str, Any], account_name: str | None) -> dict[str, Any]:
    state = alert["state"]
    if state == "snoozed" and alert.get("snoozed_until"):
        state += f" until {alert['snoozed_until']:%Y-%m-%d %H:%M} UTC"
    return {"alert": alert, "account": account_name or alert["account_id"], "state": state}


def confirm_page(action: LinkAction, alert: dict[str, Any], account_name: str | None, recipient: str) -> str:
    title, button = _CONFIRM[action]
    return _templates.get_template("confirm.html").render(
        title=title, heading=title, button=button, action=action.value, recipient=recipient,
        snooze_choices=SNOOZE_CHOICES, **_about(alert, account_name),
    )


def result_page(message: str, alert: dict[str, Any], account_name: str | None) -> str:
    return _templates.get_template("result.html").render(
        title="Done", heading=message, **_about(alert, account_name)
    )


def error_page(title: str, message: str) -> str:
    return _templates.get_template("error.html").render(title=title, heading=title, message=message)
