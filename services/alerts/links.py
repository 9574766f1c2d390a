"""Signed, expiring links that let a CSM act on an alert from Slack or email without logging in.

Incoming webhooks and email cannot call us back, so each message carries plain URLs to the
alerts service: `GET` shows a confirmation page (link scanners and unfurlers only ever GET,
so nothing happens by accident), `POST` acts. A link is an HS256 JWT naming the alert, the
action and the recipient it was sent to, with an expiry checked against the injected clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

import jwt

ALGORITHM = "HS256"


class LinkAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    SNOOZE = "snooze"
    FEEDBACK = "feedback"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class LinkClaims:
    alert_id: int
    action: LinkAction
    recipient: str
    expires_at: datetime


class LinkError(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def make_token(
    secret: str, alert_id: int, action: LinkAction, recipient: str, now: datetime, ttl: timedelta
) -> str:
    claims = {
        "alert": alert_id,
        "act": action.value,
        "rcp": recipient,
        "iat": int(now.timestamp()),
        "exp": int((now + ttl).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def read_token(secret: str, token: str, now: datetime) -> LinkClaims:
    try:
        # Expiry is checked below against the injected clock, not the library's wall clock.
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            options={"verify_exp": False, "require": ["exp", "alert", "act", "rcp"]},
        )
        action = LinkAction(claims["act"])
        alert_id = int(claims["alert"])
        expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
        recipient = str(claims["rcp"])
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
        raise LinkError("invalid_link", "this link is not valid (it may have been cut or altered)") from exc
    if now >= expires_at:
        raise LinkError("expired_link", f"this link expired on {expires_at:%Y-%m-%d %H:%M} UTC")
    return LinkClaims(alert_id, action, recipient, expires_at)


def link_url(public_url: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/v1/alert-links/{token}"


class LinkSigner:
    """Makes and reads the action links of this deployment (secret resolved at start)."""

    def __init__(self, public_url: str, ttl: timedelta) -> None:
        self.public_url = public_url
        self.ttl = ttl
        self._secret: str | None = None

    def configure(self, secret: str) -> None:
        self._secret = secret

    @property
    def secret(self) -> str:
        if self._secret is None:
            raise RuntimeError("the link secret is loaded at start")
        return self._secret

    def url(self, alert_id: int, action: LinkAction, recipient: str, now: datetime) -> str:
        return link_url(self.public_url, make_token(self.secret, alert_id, action, recipient, now, self.ttl))

    def read(self, token: str, now: datetime) -> LinkClaims:
        return read_token(self.secret, token, now)
