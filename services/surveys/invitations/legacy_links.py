"""Reads the invitation links surveys signed before `shared.signed_links`. Nothing issues this
format any more, but unsubscribe links never expire, so it is read for as long as old emails exist.

A response link was `<invitation id>.<expiry, unix seconds>.<signature>`, the signature being
base64url(HMAC-SHA256(secret, "respond:<id>:<expiry>")) without padding; an unsubscribe link
was `<invitation id>.<signature>` over "unsubscribe:<id>". The purpose is in the signed
message, so one never stands in for the other.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime

from shared.signed_links import check_expiry, invalid_link

_ID = re.compile(r"inv_[A-Za-z0-9_-]{8,64}")


def is_legacy(token: str) -> bool:
    return token.startswith("inv_")


class LegacyLinkReader:
    def __init__(self, secret: str) -> None:
        self._key = secret.encode()

    def _valid(self, message: str, signature: str) -> bool:
        digest = hmac.new(self._key, message.encode(), hashlib.sha256).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=")
        return hmac.compare_digest(expected, signature.encode())

    def read_respond_token(self, token: str, *, now: datetime | None) -> str:
        parts = token.split(".")
        if len(parts) != 3 or not _ID.fullmatch(parts[0]) or not parts[1].isdigit():
            raise invalid_link()
        invitation_id, expiry, signature = parts
        if not self._valid(f"respond:{invitation_id}:{expiry}", signature):
            raise invalid_link()
        try:
            expires_at = datetime.fromtimestamp(int(expiry), UTC)
        except (OverflowError, ValueError, OSError) as exc:
            raise invalid_link() from exc
        check_expiry(expires_at, now)
        return invitation_id

    def read_unsubscribe_token(self, token: str) -> str:
        invitation_id, dot, signature = token.partition(".")
        if not dot or not _ID.fullmatch(invitation_id) or not self._valid(f"unsubscribe:{invitation_id}",
                                                                           signature):
            raise invalid_link()
        return invitation_id
