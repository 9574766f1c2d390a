"""The small HTML pages behind action links: a confirmation form (GET) and the result (POST).

Text from alerts (summaries, names) is escaped; pages are not cached or indexed and never
send the link onward in a Referer header.
"""

from __future__ import annotations

import html
from typing import Any

from services.alerts.links import LinkAction

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
}
SNOOZE_CHOICES = (("24", "1 day"), ("72", "3 days"), ("168", "1 week"), ("336", "2 weeks"))

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d1c1d}"
    "h1{font-size:1.3rem}.muted{color:#616061}button{font-size:1rem;padding:.5rem 1.2rem;margin-top:1rem}"
    "label{display:block;margin-top:.8rem}textarea,input,select{width:100%;font-size:1rem}"
)


def _page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><meta name='viewport' "
        f"content='width=device-width'><title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _about(alert: dict[str, Any], account_name: str | None) -> str:
    e = html.escape
    state = alert["state"]
    if state == "snoozed" and alert.get("snoozed_until"):
        state += f" until {alert['snoozed_until']:%Y-%m-%d %H:%M} UTC"
    return (
        f"<p><strong>{e(account_name or alert['account_id'])}</strong>: {e(alert['summary'])}</p>"
        f"<p class='muted'>{e(alert['signal_type'])} · severity {e(alert['severity'])} · now {e(state)}</p>"
    )


def confirm_page(action: LinkAction, alert: dict[str, Any], account_name: str | None, recipient: str) -> str:
    e = html.escape
    who = f"<label>Your name or email<input name='actor' value='{e(recipient)}' maxlength='200'></label>"
    if action is LinkAction.ACKNOWLEDGE:
        title, fields, button = "Acknowledge this alert?", who, "Acknowledge"
    elif action is LinkAction.SNOOZE:
        options = "".join(f"<option value='{v}'>{label}</option>" for v, label in SNOOZE_CHOICES)
        title, button = "Snooze this alert", "Snooze"
        fields = (
            f"<label>For<select name='hours'>{options}</select></label>"
            "<label>Reason (required)<textarea name='reason' required maxlength='500'></textarea></label>"
            + who
        )
    elif action is LinkAction.RESOLVE:
        title, button = "Resolve this alert?", "Resolve"
        fields = (
            "<p class='muted'>Resolve it when the risk is handled; it also resolves by itself "
            "when the signal clears.</p>"
            "<label>What was done (optional)<textarea name='reason' maxlength='500'></textarea></label>"
            + who
        )
    else:
        # The verdict is the recipient's: the link was signed for them (no name to type).
        title, button = "Was this alert useful?", "Send feedback"
        fields = (
            "<label><input type='radio' name='useful' value='no' checked style='width:auto'> "
            "Not useful (a false alarm, or nothing to do)</label>"
            "<label><input type='radio' name='useful' value='yes' style='width:auto'> Useful</label>"
            "<label>Comment (optional)<textarea name='comment' maxlength='1000'></textarea></label>"
            f"<p class='muted'>Recorded as {e(recipient)}, to whom this link was sent.</p>"
        )
    return _page(
        title,
        f"<h1>{e(title)}</h1>{_about(alert, account_name)}<form method='post'>{fields}"
        f"<button type='submit'>{e(button)}</button></form>",
    )


def result_page(message: str, alert: dict[str, Any], account_name: str | None) -> str:
    return _page(
        "Done",
        f"<h1>{html.escape(message)}</h1>{_about(alert, account_name)}"
        "<p class='muted'>You can close this page.</p>",
    )


def error_page(title: str, message: str) -> str:
    return _page(title, f"<h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>")
