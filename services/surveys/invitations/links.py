"""Signed links in invitations. Pure; the caller passes the clock.

A response link is `<invitation id>.<expiry, unix seconds>.<signature>`, the signature being
base64url(HMAC-SHA256(secret, "respond:<id>:<expiry>")). The signature makes ids
unguessable and the expiry tamper-proof; single use is the database's part (the invitation
row records its use). An unsubscribe link is `<invitation id>.<signature>` over
"unsubscribe:<id>" and never expires: an old email's unsubscribe link must keep working.
The purposes are signed apart, so one link can never stand in for the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime

_ID = re.compile(r"inv_[A-Za-z0-9_-]{8,64}")


class LinkError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # "invalid" or "expired"


def new_invitation_id() -> str:
    return "inv_" + secrets.token_urlsafe(16)


class LinkSigner:
    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the link secret must not be empty")
        self._key = secret.encode()

    def _sign(self, message: str) -> str:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def respond_token(self, invitation_id: str, expires_at: datetime) -> str:
        expiry = int(expires_at.timestamp())
        return f"{invitation_id}.{expiry}.{self._sign(f'respond:{invitation_id}:{expiry}')}"

    def read_respond_token(self, token: str, *, now: datetime | None) -> str:
        """The invitation id of a valid, unexpired response link (`now=None`: expiry not checked)."""
        parts = token.split(".")
        if len(parts) != 3 or not _ID.fullmatch(parts[0]) or not parts[1].isdigit():
            raise LinkError("invalid", "this survey link is not valid")
        invitation_id, expiry, signature = parts
        expected = self._sign(f"respond:{invitation_id}:{expiry}")
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkError("invalid", "this survey link is not valid")
        if now is not None and datetime.fromtimestamp(int(expiry), UTC) <= now:
            raise LinkError("expired", "this survey link has expired")
        return invitation_id

    def unsubscribe_token(self, invitation_id: str) -> str:
        return f"{invitation_id}.{self._sign(f'unsubscribe:{invitation_id}')}"

    def read_unsubscribe_token(self, token: str) -> str:
        invitation_id, dot, signature = token.partition(".")
        if not dot or not _ID.fullmatch(invitation_id):
            raise LinkError("invalid", "this unsubscribe link is not valid")
        expected = self._sign(f"unsubscribe:{invitation_id}")
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise LinkError("invalid", "this unsubscribe link is not valid")
        return invitation_id
