"""Which Churnwatch account a help-desk ticket belongs to. Pure; never guesses.

Only explicit mappings count, most specific first: the ticket's organization id, then (for
Zendesk, whose ticket events name the requester only by id) the requester's Zendesk user id,
then the requester's email domain. No match means no account (the ticket is still
published, unattributed, and counted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

import orjson


class MappingKind(StrEnum):
    ORGANIZATION = "organization"
    ZENDESK_REQUESTER = "zendesk_requester"
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


def lookup_keys(organization_id: str | None, requester_email: str | None,
                zendesk_requester_id: str | None = None) -> list[MappingKey]:
    """The mapping rows that could decide this ticket, most specific first."""
    keys: list[MappingKey] = []
    if organization_id:
        keys.append((MappingKind.ORGANIZATION, normalise_key(MappingKind.ORGANIZATION, organization_id)))
    if zendesk_requester_id:
        keys.append((MappingKind.ZENDESK_REQUESTER,
                     normalise_key(MappingKind.ZENDESK_REQUESTER, zendesk_requester_id)))
    domain = email_domain(requester_email)
    if domain:
        keys.append((MappingKind.EMAIL_DOMAIN, domain))
    return keys


def resolve_account(organization_id: str | None, requester_email: str | None,
                    known: Mapping[MappingKey, str],
                    zendesk_requester_id: str | None = None) -> Resolution:
    for kind, key in lookup_keys(organization_id, requester_email, zendesk_requester_id):
        account = known.get((kind, key))
        if account is not None:
            return Resolution(account, kind)
    return Resolution(None, None)


def parse_mapping_name(name: str) -> tuple[MappingKind, str]:
    """`organization:123`, `zendesk_requester:900002` or `email_domain:acme.com` as (kind, key)."""
    kind_text, _, key = name.partition(":")
    try:
        kind = MappingKind(kind_text.strip())
    except ValueError as exc:
        raise ValueError(f"{name!r} must start with one of "
                         f"{', '.join(k.value + ':' for k in MappingKind)}") from exc
    if not key.strip():
        raise ValueError(f"{name!r} has no key after the colon")
    return kind, normalise_key(kind, key)


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
        try:
            kind, key = parse_mapping_name(name)
        except ValueError as exc:
            raise ValueError(f"CHURNWATCH_TICKET_ACCOUNT_MAPPINGS: {exc}") from exc
        if not isinstance(account, str) or not account.strip():
            raise ValueError(f"CHURNWATCH_TICKET_ACCOUNT_MAPPINGS: {name!r} must map to an account id")
        mappings.append(TicketMapping(kind, key, account.strip()))
    return mappings
