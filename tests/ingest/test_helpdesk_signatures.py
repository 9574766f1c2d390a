"""Webhook signatures computed independently, per each vendor's published scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.helpdesk.signatures import (
    verify_generic,
    verify_intercom,
    verify_zendesk,
)
from shared.webhook_signatures import SignatureError

SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
BODY = b'{"type":"zen:event-type:ticket.created","id":"01HN","detail":{"id":"35436"}}'
NOW = datetime(2026, 11, 20, 10, 0, 0, tzinfo=UTC)
STAMP = "2026-11-20T10:00:00Z"


def zendesk_sig(secret: str, timestamp: str, body: bytes) -> str:
    return base64.b64encode(
        hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()).decode()


def intercom_sig(secret: str, body: bytes) -> str:
    return "sha1=" + hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


def generic_sig(secret: str, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(SignatureError) as info:
        call()
    return info.value.code


def test_zendesk_valid_signature_passes() -> None:
    verify_zendesk(SECRET, BODY, zendesk_sig(SECRET, STAMP, BODY), STAMP, now=NOW, max_age_seconds=300)
    # Unix-seconds timestamps, and a sender clock a little ahead of ours, are fine too.
    unix = str(int((NOW + timedelta(seconds=30)).timestamp()))
    verify_zendesk(SECRET, BODY, zendesk_sig(SECRET, unix, BODY), unix, now=NOW, max_age_seconds=300)


def test_zendesk_rejections_name_the_problem() -> None:
    good = zendesk_sig(SECRET, STAMP, BODY)
    assert code_of(lambda: verify_zendesk(SECRET, BODY, None, STAMP, now=NOW,
                                          max_age_seconds=300)) == "missing_signature"
    assert code_of(lambda: verify_zendesk(SECRET, BODY, good, None, now=NOW,
                                          max_age_seconds=300)) == "missing_signature_timestamp"
    assert code_of(lambda: verify_zendesk("wrong-secret", BODY, good, STAMP, now=NOW,
                                          max_age_seconds=300)) == "invalid_signature"
    tampered = BODY.replace(b"35436", b"35437")
    assert code_of(lambda: verify_zendesk(SECRET, tampered, good, STAMP, now=NOW,
                                          max_age_seconds=300)) == "invalid_signature"
    # The timestamp is signed: moving it forward to dodge the age check breaks the signature.
    assert code_of(lambda: verify_zendesk(SECRET, BODY, good, "2026-11-20T10:04:00Z", now=NOW,
                                          max_age_seconds=300)) == "invalid_signature"


def test_zendesk_stale_timestamp_is_a_replay() -> None:
    old = "2026-11-20T09:54:59Z"  # 301 s ago
    with pytest.raises(SignatureError) as info:
        verify_zendesk(SECRET, BODY, zendesk_sig(SECRET, old, BODY), old, now=NOW, max_age_seconds=300)
    assert info.value.code == "stale_signature"
    assert "301 s" in info.value.message
    edge = "2026-11-20T09:55:00Z"  # exactly 300 s: still accepted
    verify_zendesk(SECRET, BODY, zendesk_sig(SECRET, edge, BODY), edge, now=NOW, max_age_seconds=300)


def test_zendesk_unreadable_timestamp() -> None:
    stamp = "yesterday"
    assert code_of(lambda: verify_zendesk(SECRET, BODY, zendesk_sig(SECRET, stamp, BODY), stamp,
                                          now=NOW, max_age_seconds=300)) == "invalid_signature_timestamp"


def test_intercom_sha1() -> None:
    verify_intercom(SECRET, BODY, intercom_sig(SECRET, BODY))
    assert code_of(lambda: verify_intercom(SECRET, BODY, None)) == "missing_signature"
    assert code_of(lambda: verify_intercom("wrong", BODY, intercom_sig(SECRET, BODY))) == "invalid_signature"
    assert code_of(lambda: verify_intercom(SECRET, BODY + b" ", intercom_sig(SECRET, BODY))) == \
        "invalid_signature"
    bare_hex = intercom_sig(SECRET, BODY).removeprefix("sha1=")
    assert code_of(lambda: verify_intercom(SECRET, BODY, bare_hex)) == "invalid_signature"


def test_generic_sha256_over_timestamp_and_body() -> None:
    unix = str(int(NOW.timestamp()))

    def verify(secret: str, body: bytes, signature: str | None, stamp: str | None) -> None:
        verify_generic(secret, body, signature, stamp, now=NOW, max_age_seconds=300)

    verify(SECRET, BODY, generic_sig(SECRET, unix, BODY), unix)
    verify(SECRET, BODY, generic_sig(SECRET, STAMP, BODY), STAMP)  # ISO 8601 works too
    good = generic_sig(SECRET, unix, BODY)
    assert code_of(lambda: verify(SECRET, BODY, "", unix)) == "missing_signature"
    assert code_of(lambda: verify(SECRET, BODY, good, None)) == "missing_signature_timestamp"
    assert code_of(lambda: verify("wrong", BODY, good, unix)) == "invalid_signature"
    assert code_of(lambda: verify(SECRET, b"{}", good, unix)) == "invalid_signature"  # tampered
    # The timestamp is signed: a replay with a fresh timestamp no longer matches.
    assert code_of(lambda: verify(SECRET, BODY, good, str(int(NOW.timestamp()) + 60))) == \
        "invalid_signature"
    # The body alone (the old scheme) or the sha1 of it is not the generic scheme.
    body_only = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert code_of(lambda: verify(SECRET, BODY, body_only, unix)) == "invalid_signature"
    assert code_of(lambda: verify(SECRET, BODY, intercom_sig(SECRET, BODY), unix)) == "invalid_signature"
    stale = str(int((NOW - timedelta(seconds=301)).timestamp()))
    assert code_of(lambda: verify(SECRET, BODY, generic_sig(SECRET, stale, BODY), stale)) == "stale_signature"
