"""Signed links in invitations. Pure; the caller passes the clock.

A response link is a `shared.signed_links` token for the purpose `respond`, about the
invitation, expiring with it; an unsubscribe link is one for `unsubscribe` and never expires:
an old email's unsubscribe link must keep working. The signature makes ids unguessable and the
expiry tamper-proof; single use is the database's part (the invitation row records its use).
The purposes are signed apart, so one link can never stand in for the other.

Links sent before the shared format (`legacy_links`) are still accepted; every new link is
issued in the shared format. The two cannot be confused: an old link starts with the
invitation id (`inv_`), a new one with a JWT header (`eyJ`).
"""

from __future__ import annotations

import secrets
from datetime import datetime

from services.surveys.invitations import legacy_links
from shared.signed_links import LinkPurpose, SignedLinks

ISSUER = "churnwatch-surveys"
RESPOND = LinkPurpose("respond")
UNSUBSCRIBE = LinkPurpose("unsubscribe", expires=False)


def new_invitation_id() -> str:
    return "inv_" + secrets.token_urlsafe(16)


class LinkSigner:
    def __init__(self, secret: str) -> None:
        self._links = SignedLinks(secret, ISSUER)
        self._legacy = legacy_links.LegacyLinkReader(secret)

    def respond_token(self, invitation_id: str, expires_at: datetime, now: datetime) -> str:
        return self._links.issue(RESPOND, invitation_id, now, expires_at=expires_at)

    def read_respond_token(self, token: str, *, now: datetime | None) -> str:
        """The invitation id of a valid, unexpired response link (`now=None`: expiry not checked)."""
        if legacy_links.is_legacy(token):
            return self._legacy.read_respond_token(token, now=now)
        return self._links.read(token, [RESPOND], now).subject

    def unsubscribe_token(self, invitation_id: str, now: datetime) -> str:
        return self._links.issue(UNSUBSCRIBE, invitation_id, now)

    def read_unsubscribe_token(self, token: str) -> str:
        if legacy_links.is_legacy(token):
            return self._legacy.read_unsubscribe_token(token)
        return self._links.read(token, [UNSUBSCRIBE], None).subject
