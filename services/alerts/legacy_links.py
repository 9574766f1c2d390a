"""Reads the action links alerts signed before `shared.signed_links`, so messages already sent keep
working until their links expire (`CHURNWATCH_ALERTS_LINK_TTL_HOURS` after sending). Nothing
issues this format any more; delete this module once the longest TTL since the change has passed.

The old token is an HS256 JWT with the claims `alert` (the alert id), `act` (the action),
`rcp` (the recipient), `iat` and `exp`, and no `iss`, `aud` or `sub`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from shared.signed_links import check_expiry

ACTIONS = frozenset({"acknowledge", "snooze", "feedback", "resolve"})


@dataclass(frozen=True)
class LegacyClaims:
    alert_id: int
    action: str
    recipient: str
    expires_at: datetime


def read_legacy_token(secret: str, token: str, now: datetime) -> LegacyClaims | None:
    """The claims of an old-format link, None when `token` is not one; `LinkError` when it has expired."""
    try:
        # No `audience` is passed, so PyJWT refuses any token that has one: a new-format link of any
        # purpose is never read here.
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={
            "verify_exp": False, "verify_iat": False, "require": ["exp", "alert", "act", "rcp"]})
        legacy = LegacyClaims(int(claims["alert"]), str(claims["act"]), str(claims["rcp"]),
                              datetime.fromtimestamp(int(claims["exp"]), UTC))
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError, OverflowError):
        return None
    if legacy.action not in ACTIONS:
        return None
    check_expiry(legacy.expires_at, now)
    return legacy
