"""The HMAC and comparison both services' webhook checks share, against published test vectors."""

from __future__ import annotations

from shared.webhook_signatures import SignatureError, hmac_sha1, hmac_sha256, same_signature


def test_hmacs_match_rfc_4231_and_rfc_2202() -> None:
    # RFC 4231 test case 2 (SHA-256) and RFC 2202 test case 2 (SHA-1): key "Jefe".
    message = b"what do ya want for nothing?"
    assert hmac_sha256("Jefe", message).hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    assert hmac_sha1("Jefe", message).hex() == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"


def test_a_signature_is_compared_whole_with_surrounding_space_ignored() -> None:
    assert same_signature("sha256=abc", " sha256=abc\n")
    assert not same_signature("sha256=abc", "sha256=abd")
    assert not same_signature("sha256=abc", "sha256=ab")


def test_the_error_carries_a_code_and_a_message_naming_the_header() -> None:
    error = SignatureError("missing_signature", "Typeform-Signature header is missing")
    assert (error.code, error.message, str(error)) == (
        "missing_signature", "Typeform-Signature header is missing", "Typeform-Signature header is missing")
