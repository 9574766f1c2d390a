"""Which account a respondent answers for: named explicitly, or looked up in the contacts. Pure.

In order: an account named by the sender (the native body's `account_id`, a Typeform
hidden field, a Delighted person property, the invitation the answer came through); else
the accounts the user id belongs to (`group` calls); else the accounts of the users with
that email. Exactly one account maps the response; none or several leave it unmapped,
with the reason, because a guess would put one customer's answer on another's score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class MappedBy(StrEnum):
    EXPLICIT = "explicit"  # the sender named the account
    INVITATION = "invitation"  # the invitation the answer came through
    USER = "user"  # the user id's only account
    EMAIL = "email"  # the only account of the users with that email


@dataclass(frozen=True)
class Attribution:
    account_id: str | None
    mapped_by: MappedBy | None = None
    unmapped_reason: str | None = None

    @property
    def mapped(self) -> bool:
        return self.account_id is not None


@dataclass(frozen=True)
class Directory:
    """The part of the contacts a batch of respondents needs: user -> accounts, email -> users."""

    accounts_by_user: Mapping[str, frozenset[str]] = field(default_factory=dict)
    users_by_email: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def accounts_of_email(self, email: str) -> frozenset[str]:
        accounts: set[str] = set()
        for user in self.users_by_email.get(email, frozenset()):
            accounts |= self.accounts_by_user.get(user, frozenset())
        return frozenset(accounts)


def normalize_email(value: object) -> str | None:
    """An address as contacts are keyed: trimmed and lower-cased; None if it is not one."""
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    local, at, domain = text.partition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in text):
        return None
    return text


def attribute(
    *,
    explicit_account: str | None,
    user_id: str | None,
    email: str | None,
    directory: Directory,
    explicit_kind: MappedBy = MappedBy.EXPLICIT,
) -> Attribution:
    if explicit_account:
        return Attribution(explicit_account, explicit_kind)
    reasons: list[str] = []
    if user_id:
        accounts = directory.accounts_by_user.get(user_id, frozenset())
        if len(accounts) == 1:
            return Attribution(next(iter(accounts)), MappedBy.USER)
        reasons.append(_why(f"user {user_id}", accounts))
    if email:
        accounts = directory.accounts_of_email(email)
        if len(accounts) == 1:
            return Attribution(next(iter(accounts)), MappedBy.EMAIL)
        reasons.append(_why(f"email {email}", accounts))
    if not reasons:
        reasons.append("no account, user id or email identifies the respondent")
    return Attribution(None, None, "; ".join(reasons))


def _why(who: str, accounts: Iterable[str]) -> str:
    found = sorted(accounts)
    if not found:
        return f"{who} belongs to no known account"
    return f"{who} belongs to {len(found)} accounts ({', '.join(found[:5])}): not guessing"
