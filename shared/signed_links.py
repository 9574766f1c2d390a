"""Signed links: URLs that carry their own proof, for people who act from an email or a chat message.

A link token is an HS256 JWT (PyJWT) with explicit claims:
- `iss`, the service that signs it (`churnwatch-alerts`, `churnwatch-surveys`);
- `aud`, its purpose, qualified by the issuer (`churnwatch-surveys/respond`), so a link made for
  one purpose is refused for any other, even by a service that happened to share the secret;
- `sub`, what it is about (an alert id, an invitation id);
- `iat`, when it was issued, and `exp`, when it stops working, for purposes that expire; a
  purpose that never expires (unsubscribe) carries no `exp`;
- a purpose's own claims (alerts' recipient), under short names to keep URLs short.

Time is the caller's: expiry is checked against the `now` passed in (tests inject a clock), not
the library's wall clock. Only the reading is shared; which purposes exist is each service's.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import jwt

ALGORITHM = "HS256"
REGISTERED_CLAIMS = frozenset({"iss", "aud", "sub", "iat", "exp", "nbf", "jti"})


@dataclass(frozen=True)
class LinkPurpose:
    name: str
    expires: bool = True


class LinkProblem(StrEnum):
    INVALID = "invalid"
    EXPIRED = "expired"


class LinkError(ValueError):
    def __init__(self, problem: LinkProblem, message: str, expired_at: datetime | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.expired_at = expired_at


def invalid_link() -> LinkError:
    return LinkError(LinkProblem.INVALID, "this link is not valid (it may have been cut or altered)")


def expired_link(expires_at: datetime) -> LinkError:
    return LinkError(LinkProblem.EXPIRED, f"this link expired on {expires_at:%Y-%m-%d %H:%M} UTC", expires_at)


def check_expiry(expires_at: datetime | None, now: datetime | None) -> None:
    """Raises `LinkError(EXPIRED)` when `now` is at or past the expiry (`now=None`: not checked)."""
    if expires_at is not None and now is not None and now >= expires_at:
        raise expired_link(expires_at)


@dataclass(frozen=True)
class LinkClaims:
    purpose: LinkPurpose
    subject: str
    issued_at: datetime
    expires_at: datetime | None
    extra: Mapping[str, Any] = field(default_factory=dict)


class SignedLinks:
    """Issues and reads the link tokens of one service, signed with that service's secret."""

    def __init__(self, secret: str, issuer: str) -> None:
        if not secret:
            raise ValueError("the link secret must not be empty")
        self._secret = secret
        self.issuer = issuer

    def _audience(self, purpose: LinkPurpose) -> str:
        return f"{self.issuer}/{purpose.name}"

    def issue(self, purpose: LinkPurpose, subject: str, now: datetime, *,
              expires_at: datetime | None = None, extra: Mapping[str, str] | None = None) -> str:
        if purpose.expires != (expires_at is not None):
            raise ValueError(f"a {purpose.name} link {'needs' if purpose.expires else 'takes no'} expiry")
        clashing = REGISTERED_CLAIMS & set(extra or {})
        if clashing:
            raise ValueError(f"extra claims may not replace registered ones: {sorted(clashing)}")
        claims: dict[str, Any] = {
            **(extra or {}),
            "iss": self.issuer,
            "aud": self._audience(purpose),
            "sub": subject,
            "iat": int(now.timestamp()),
        }
        if expires_at is not None:
            claims["exp"] = int(expires_at.timestamp())
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def read(self, token: str, purposes: Collection[LinkPurpose], now: datetime | None) -> LinkClaims:
        """The claims of a valid link made for one of `purposes`; `now=None` skips the expiry check
        (a thank-you page shown after the link was used)."""
        by_audience = {self._audience(p): p for p in purposes}
        try:
            # Time claims are checked below against the caller's clock, not the library's.
            claims = jwt.decode(
                token, self._secret, algorithms=[ALGORITHM], audience=list(by_audience), issuer=self.issuer,
                options={"verify_exp": False, "verify_iat": False, "require": ["iss", "aud", "sub", "iat"]},
            )
            audience = claims["aud"]
            # One purpose per link: a list of audiences is not something we ever issue.
            purpose = by_audience[audience] if isinstance(audience, str) else None
            issued_at = datetime.fromtimestamp(int(claims["iat"]), UTC)
            expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC) if "exp" in claims else None
            subject = str(claims["sub"])
        except (jwt.InvalidTokenError, ValueError, TypeError, KeyError, OverflowError) as exc:
            raise invalid_link() from exc
        if purpose is None or (purpose.expires and expires_at is None):
            raise invalid_link()
        check_expiry(expires_at, now)
        extra = {k: v for k, v in claims.items() if k not in REGISTERED_CLAIMS}
        return LinkClaims(purpose, subject, issued_at, expires_at, extra)
