"""Signed, expiring links that let a CSM act on an alert from Slack or email without logging in.

Incoming webhooks and email cannot call us back, so each message carries plain URLs to the
alerts service: `GET` shows a confirmation page (link scanners and unfurlers only ever GET,
so nothing happens by accident), `POST` acts. A link is a `shared.signed_links` token whose
purpose is the action (so an acknowledge link can never vote on usefulness), whose subject is
the alert, and which names the recipient it was sent to; its expiry is checked against the
injected clock. Links sent before the shared format are still read (`legacy_links`) until
they expire.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from services.alerts import legacy_links
from shared.signed_links import LinkError, LinkProblem, LinkPurpose, SignedLinks

ISSUER = "churnwatch-alerts"


class LinkAction(StrEnum):
    ACKNOWLEDGE = "acknowledge"
    SNOOZE = "snooze"
    FEEDBACK = "feedback"
    RESOLVE = "resolve"


PURPOSES = {action: LinkPurpose(action.value) for action in LinkAction}


@dataclass(frozen=True)
class LinkClaims:
    alert_id: int
    action: LinkAction
    recipient: str
    expires_at: datetime


def make_token(
    secret: str, alert_id: int, action: LinkAction, recipient: str, now: datetime, ttl: timedelta
) -> str:
    return SignedLinks(secret, ISSUER).issue(
        PURPOSES[action], str(alert_id), now, expires_at=now + ttl, extra={"rcp": recipient}
    )


def read_token(secret: str, token: str, now: datetime) -> LinkClaims:
    try:
        claims = SignedLinks(secret, ISSUER).read(token, PURPOSES.values(), now)
    except LinkError as exc:
        if exc.problem is LinkProblem.EXPIRED:
            raise
        old = legacy_links.read_legacy_token(secret, token, now)
        if old is None:
            raise
        return LinkClaims(old.alert_id, LinkAction(old.action), old.recipient, old.expires_at)
    try:
        alert_id = int(claims.subject)
        recipient = str(claims.extra["rcp"])
    except (ValueError, KeyError) as exc:
        raise LinkError(LinkProblem.INVALID, str(exc)) from exc
    assert claims.expires_at is not None  # every action purpose expires
    return LinkClaims(alert_id, LinkAction(claims.purpose.name), recipient, claims.expires_at)


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
