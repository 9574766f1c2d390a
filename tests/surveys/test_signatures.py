"""Webhook signatures per vendor, checked against digests computed outside Python (openssl)."""

from __future__ import annotations

import pytest

from services.surveys.vendors.signatures import (
    delighted_signature,
    typeform_signature,
    verify_delighted,
    verify_typeform,
)
from shared.webhook_signatures import SignatureError

BODY = b'{"event_type":"survey_response.created","event_data":{"id":"42","score":9}}'
# printf '%s' "$BODY" | openssl dgst -sha256 -hmac delighted-api-key
DELIGHTED_HEX = "72984d4a52fbcb39bb1660281ef5747d51434fa943200c15967c74e6adcb6970"
# printf '%s' "$BODY" | openssl dgst -sha256 -hmac typeform-secret -binary | base64
TYPEFORM_B64 = "tvny48Yt60Y+h6Dexb6/EH632SG26K5grUNCKCyoCSQ="


def code_of(check: object, *args: object) -> str:
    with pytest.raises(SignatureError) as caught:
        check(*args)  # type: ignore[operator]
    return caught.value.code


def test_signers_match_openssl() -> None:
    assert delighted_signature("delighted-api-key", BODY) == f"sha256={DELIGHTED_HEX}"
    assert typeform_signature("typeform-secret", BODY) == f"sha256={TYPEFORM_B64}"


def test_delighted_accepts_its_signature_with_or_without_the_scheme() -> None:
    verify_delighted("delighted-api-key", BODY, f"sha256={DELIGHTED_HEX}")
    verify_delighted("delighted-api-key", BODY, DELIGHTED_HEX)
    verify_delighted("delighted-api-key", BODY, f"  sha256={DELIGHTED_HEX.upper()}  ")


@pytest.mark.parametrize(
    ("secret", "body", "header", "code"),
    [
        ("another-key", BODY, f"sha256={DELIGHTED_HEX}", "invalid_signature"),  # wrong secret
        ("delighted-api-key", BODY.replace(b'"score":9', b'"score":0'), f"sha256={DELIGHTED_HEX}",
         "invalid_signature"),  # tampered body
        ("delighted-api-key", BODY, f"sha256={DELIGHTED_HEX[:-2]}", "invalid_signature"),  # truncated
        ("delighted-api-key", BODY, f"sha1={DELIGHTED_HEX}", "unsupported_signature"),
        ("delighted-api-key", BODY, None, "missing_signature"),
        ("delighted-api-key", BODY, "  ", "missing_signature"),
    ],
    ids=["wrong-secret", "tampered", "truncated", "sha1", "missing", "blank"],
)
def test_delighted_refusals(secret: str, body: bytes, header: str | None, code: str) -> None:
    assert code_of(verify_delighted, secret, body, header) == code


def test_typeform_accepts_its_signature() -> None:
    verify_typeform("typeform-secret", BODY, f"sha256={TYPEFORM_B64}")


@pytest.mark.parametrize(
    ("secret", "body", "header", "code"),
    [
        ("wrong-secret", BODY, f"sha256={TYPEFORM_B64}", "invalid_signature"),
        ("typeform-secret", BODY + b" ", f"sha256={TYPEFORM_B64}", "invalid_signature"),
        # Typeform sends base64: the same digest in hex is not its scheme.
        ("typeform-secret", BODY, "sha256=" + delighted_signature("typeform-secret", BODY)[7:],
         "invalid_signature"),
        ("typeform-secret", BODY, TYPEFORM_B64, "unsupported_signature"),  # no sha256=
        ("typeform-secret", BODY, None, "missing_signature"),
    ],
    ids=["wrong-secret", "tampered", "hex-not-base64", "no-scheme", "missing"],
)
def test_typeform_refusals(secret: str, body: bytes, header: str | None, code: str) -> None:
    assert code_of(verify_typeform, secret, body, header) == code


def test_messages_name_the_header_and_the_setting() -> None:
    with pytest.raises(SignatureError) as caught:
        verify_typeform("wrong", BODY, f"sha256={TYPEFORM_B64}")
    assert "Typeform-Signature" in caught.value.message
    assert "CHURNWATCH_TYPEFORM_WEBHOOK_SECRET" in caught.value.message
    with pytest.raises(SignatureError) as caught:
        verify_delighted("wrong", BODY, DELIGHTED_HEX)
    assert "X-Delighted-Webhook-Signature" in caught.value.message
