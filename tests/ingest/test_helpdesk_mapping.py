"""Account resolution: organization first, then email domain, never a guess."""

from __future__ import annotations

import pytest

from services.ingest.helpdesk.mapping import (
    MappingKind,
    TicketMapping,
    email_domain,
    lookup_keys,
    parse_mappings_setting,
    resolve_account,
)

KNOWN = {
    (MappingKind.ORGANIZATION, "123"): "acct-org",
    (MappingKind.EMAIL_DOMAIN, "acme.com"): "acct-domain",
}


def test_organization_wins_over_email_domain() -> None:
    resolution = resolve_account("123", "jo@acme.com", KNOWN)
    assert (resolution.account_id, resolution.matched_by) == ("acct-org", MappingKind.ORGANIZATION)


def test_email_domain_when_organization_unmapped_or_absent() -> None:
    assert resolve_account("999", "Jo@ACME.com", KNOWN).account_id == "acct-domain"
    resolution = resolve_account(None, "jo@acme.com", KNOWN)
    assert resolution.matched_by is MappingKind.EMAIL_DOMAIN


def test_nothing_is_guessed() -> None:
    # A subdomain, a lookalike, or a missing email map to nothing.
    assert resolve_account(None, "jo@eu.acme.com", KNOWN).account_id is None
    assert resolve_account(None, "jo@acme.com.evil.io", KNOWN).account_id is None
    assert resolve_account("1234", None, KNOWN).account_id is None
    assert resolve_account(None, None, KNOWN) == resolve_account(None, "not-an-email", KNOWN)
    assert resolve_account(None, "not-an-email", KNOWN).matched_by is None


def test_lookup_keys_and_domains() -> None:
    assert lookup_keys("123", "a@Acme.COM") == [(MappingKind.ORGANIZATION, "123"),
                                               (MappingKind.EMAIL_DOMAIN, "acme.com")]
    assert lookup_keys(None, None) == []
    assert email_domain("x@y@Example.org.") == "example.org"
    assert email_domain("@") is None


def test_setting_is_parsed_and_normalised() -> None:
    parsed = parse_mappings_setting('{"organization:123": "acct-acme", "email_domain:ACME.com": "acct-acme"}')
    assert parsed == [TicketMapping(MappingKind.ORGANIZATION, "123", "acct-acme"),
                      TicketMapping(MappingKind.EMAIL_DOMAIN, "acme.com", "acct-acme")]
    assert parse_mappings_setting(None) == []
    assert parse_mappings_setting("  ") == []


@pytest.mark.parametrize(("text", "fragment"), [
    ("{not json", "not valid JSON"),
    ('["organization:1"]', "JSON object"),
    ('{"company:1": "a"}', "'company:1'"),
    ('{"organization:": "a"}', "no key"),
    ('{"organization:1": ""}', "account id"),
])
def test_bad_setting_names_the_entry(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_mappings_setting(text)
