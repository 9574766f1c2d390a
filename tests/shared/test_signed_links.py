"""The one signed-link mechanism: purpose, subject, issuer and expiry, read on the caller's clock."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.links import ISSUER as ALERTS
from services.surveys.invitations.links import ISSUER as SURVEYS
from shared.signed_links import LinkError, LinkProblem, LinkPurpose, SignedLinks

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SECRET = "a-signed-links-secret-long-enough-for-hs256"
RESPOND = LinkPurpose("respond")
UNSUBSCRIBE = LinkPurpose("unsubscribe", expires=False)
ACKNOWLEDGE = LinkPurpose("acknowledge")


def problem(read: SignedLinks, token: str, purposes: list[LinkPurpose], now: datetime | None) -> LinkProblem:
    with pytest.raises(LinkError) as caught:
        read.read(token, purposes, now)
    return caught.value.problem


def test_a_link_carries_its_purpose_subject_issue_time_and_expiry() -> None:
    links = SignedLinks(SECRET, SURVEYS)
    token = links.issue(RESPOND, "inv_abc12345", NOW, expires_at=NOW + timedelta(days=14), extra={"rcp": "j"})
    claims = links.read(token, [RESPOND, UNSUBSCRIBE], NOW + timedelta(days=13))
    assert (claims.purpose, claims.subject, claims.issued_at, claims.expires_at, dict(claims.extra)) == (
        RESPOND, "inv_abc12345", NOW, NOW + timedelta(days=14), {"rcp": "j"})
    # Expiry is judged by the caller's clock, to the second; `now=None` does not judge it.
    assert problem(links, token, [RESPOND], NOW + timedelta(days=14)) is LinkProblem.EXPIRED
    assert links.read(token, [RESPOND], None).subject == "inv_abc12345"


def test_a_link_that_never_expires_has_no_expiry_and_purposes_say_which_expire() -> None:
    links = SignedLinks(SECRET, SURVEYS)
    token = links.issue(UNSUBSCRIBE, "inv_abc12345", NOW)
    assert links.read(token, [UNSUBSCRIBE], NOW + timedelta(days=3650)).expires_at is None
    with pytest.raises(ValueError, match="needs expiry"):
        links.issue(RESPOND, "inv_abc12345", NOW)
    with pytest.raises(ValueError, match="takes no expiry"):
        links.issue(UNSUBSCRIBE, "inv_abc12345", NOW, expires_at=NOW)
    with pytest.raises(ValueError, match="registered"):
        links.issue(RESPOND, "x", NOW, expires_at=NOW, extra={"sub": "someone else"})
    # A purpose that expires refuses a link of the same name made without an expiry.
    forever = links.issue(LinkPurpose("respond", expires=False), "inv_abc12345", NOW)
    assert problem(links, forever, [RESPOND], NOW) is LinkProblem.INVALID


def test_a_link_of_one_purpose_is_never_accepted_for_another() -> None:
    links = SignedLinks(SECRET, SURVEYS)
    respond = links.issue(RESPOND, "inv_abc12345", NOW, expires_at=NOW + timedelta(days=1))
    unsubscribe = links.issue(UNSUBSCRIBE, "inv_abc12345", NOW)
    assert problem(links, respond, [UNSUBSCRIBE], NOW) is LinkProblem.INVALID
    assert problem(links, unsubscribe, [RESPOND], NOW) is LinkProblem.INVALID


def test_a_link_signed_by_another_service_is_refused_even_with_the_same_secret() -> None:
    alerts_secret, surveys_secret = SECRET, SECRET[::-1]
    alerts = SignedLinks(alerts_secret, ALERTS)
    surveys = SignedLinks(surveys_secret, SURVEYS)
    acknowledge = alerts.issue(ACKNOWLEDGE, "7", NOW, expires_at=NOW + timedelta(days=1))
    respond = surveys.issue(RESPOND, "7", NOW, expires_at=NOW + timedelta(days=1))
    assert problem(surveys, acknowledge, [ACKNOWLEDGE, RESPOND], NOW) is LinkProblem.INVALID
    assert problem(alerts, respond, [ACKNOWLEDGE, RESPOND], NOW) is LinkProblem.INVALID
    # A deployment that configured one secret for both: the issuer and purpose still tell them apart.
    shared_secret_surveys = SignedLinks(alerts_secret, SURVEYS)
    assert problem(shared_secret_surveys, acknowledge, [ACKNOWLEDGE, RESPOND], NOW) is LinkProblem.INVALID


def test_cut_altered_or_unsigned_links_are_invalid() -> None:
    links = SignedLinks(SECRET, SURVEYS)
    token = links.issue(RESPOND, "inv_abc12345", NOW, expires_at=NOW + timedelta(days=1))
    header, payload, signature = token.split(".")
    none_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    unsigned = f"{none_header}.{payload}."
    for bad in (token[:-4], f"{header}.{payload}.{signature[::-1]}", unsigned, "", "a.b.c", token + "x"):
        assert problem(links, bad, [RESPOND], NOW) is LinkProblem.INVALID, bad
    with pytest.raises(ValueError, match="empty"):
        SignedLinks("", SURVEYS)
