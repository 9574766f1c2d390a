"""Which Churnwatch account a help-desk ticket belongs to. Pure; never guesses.

Only explicit mappings count: the ticket's organization id first, then its requester's
email domain. No match means no account (the ticket is still published, unattributed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import orjson


class MappingKind(StrEnum):
    ORGANIZATION = "organization"
    EMAIL_DOMAIN = "email_domain"


MappingKey = tuple[MappingKind, str]


@dataclass(frozen=True)
class TicketMapping:
    kind: MappingKind
    key: str
    account_id: str


@dataclass(frozen=True)
class Resolution:
    account_id: str | None
    matched_by: MappingKind | None


def email_domain(email: str | None) -> str | None:
    if not email:
        return None
    _, at, domain = email.strip().rpartition("@")
    domain = domain.strip().lower().rstrip(".")
    return domain if at and domain else None


def normalise_key(kind: MappingKind, key: str) -> str:
    return key.strip().lower() if kind is MappingKind.EMAIL_DOMAIN else key.strip()


def lookup_keys(organization_id: str | None, requester_email: str | None) -> list[MappingKey]:
    """The mapping rows that could decide this ticket, most specific first."""
    keys: list[MappingKey] = []
    if organization_id:
        keys.append((MappingKind.ORGANIZATION, normalise_key(MappingKind.ORGANIZATION, organization_id)))
    domain = email_domain(requester_email)
    if domain:
        keys.append((MappingKind.EMAIL_DOMAIN, domain))
    return keys


def resolve_account(organization_id: str | None, requester_email: str | None,
                    known: Mapping[MappingKey, str]) -> Resolution:
    for kind, key in lookup_keys(organization_id, requester_email):
        account = known.get((kind, key))
        if account is not None:
            return Resolution(account, kind)
    return Resolution(None, None)


def parse_mappings_setting(text: str | None) -> list[TicketMapping]:
    """`{"organization:123": "acct-acme", "email_domain:acme.com": "acct-acme"}` as mappings.

    Raises ValueError naming the bad entry: a typo here must stop the service at start
    rather than silently leave tickets unattributed.
    """
    if text is None or not text.strip():
        return []
    try:
        raw = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"CHURNWATCH_TICKET_ACCOUNT_MAPPINGS is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError("CHURNWATCH_TICKET_ACCOUNT_MAPPINGS must be a JSON object "
                         '{"organization:<id>" or "email_domain:<domain>": "<account id>"}')
    mappings = []
    for name, account in raw.items():
        kind_text, _, key = name.partition(":")
        try:
            kind = MappingKind(kind_text)
        except ValueError as exc:
            raise ValueError(f"CHURNWATCH_TICKET_ACCOUNT_MAPPINGS: {name!r} must start with "
                             "organization: or email_domain:") from exc
        if not key.strip():
            raise ValueError(f"CHURNWATCH_TICKET_ACCOUNT_MAPPINGS: {name!r} has no key after the colon")
        if not isinstance(account, str) or not account.strip():
            raise ValueError(f"CHURNWATCH_TICKET_ACCOUNT_MAPPINGS: {name!r} must map to an account id")
        mappings.append(TicketMapping(kind, normalise_key(kind, key), account.strip()))
    return mappings
