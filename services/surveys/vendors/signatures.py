"""Survey-tool webhook signatures. Pure; every digest comparison is constant-time.

- Delighted: `X-Delighted-Webhook-Signature: sha256=<hex HMAC-SHA256(API key, raw body)>`.
  Delighted signs with the project's private API key and sends no timestamp, so there is
  no age to check; a replayed delivery is harmless because a response id is amended, never
  counted twice. A bare hex digest (no `sha256=`) is accepted too.
- Typeform: `Typeform-Signature: sha256=<base64 HMAC-SHA256(webhook secret, raw body)>`; no
  timestamp either, and the same argument about replays holds.

Each check raises `SignatureError` with a code and a message naming the header, so the
sender's operator can fix the setup from the 401 alone.
"""

from __future__ import annotations

import base64

from shared.webhook_signatures import SignatureError, hmac_sha256, same_signature

DELIGHTED_HEADER = "X-Delighted-Webhook-Signature"
TYPEFORM_HEADER = "Typeform-Signature"


def delighted_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac_sha256(secret, body).hex()


def typeform_signature(secret: str, body: bytes) -> str:
    return "sha256=" + base64.b64encode(hmac_sha256(secret, body)).decode()


def _scheme_and_value(header: str, value: str | None) -> tuple[str, str]:
    if not value or not value.strip():
        raise SignatureError("missing_signature", f"{header} header is missing")
    scheme, equals, digest = value.strip().partition("=")
    return (scheme.lower(), digest) if equals else ("", scheme)


def verify_delighted(secret: str, body: bytes, signature: str | None) -> None:
    scheme, given = _scheme_and_value(DELIGHTED_HEADER, signature)
    if scheme not in ("", "sha256"):
        raise SignatureError("unsupported_signature",
                             f"{DELIGHTED_HEADER} uses {scheme!r}; only sha256 is accepted")
    if not same_signature(hmac_sha256(secret, body).hex(), given.lower()):
        raise SignatureError("invalid_signature",
                             f"{DELIGHTED_HEADER} does not match the body for the configured "
                             "Delighted API key (CHURNWATCH_DELIGHTED_WEBHOOK_SECRET)")


def verify_typeform(secret: str, body: bytes, signature: str | None) -> None:
    scheme, given = _scheme_and_value(TYPEFORM_HEADER, signature)
    if scheme != "sha256":
        raise SignatureError("unsupported_signature",
                             f"{TYPEFORM_HEADER} must be sha256=<base64 digest>")
    expected = base64.b64encode(hmac_sha256(secret, body)).decode()
    # base64 contains "=" padding: the partition above keeps everything after the first "=".
    if not same_signature(expected, given):
        raise SignatureError("invalid_signature",
                             f"{TYPEFORM_HEADER} does not match the body for the configured "
                             "secret (CHURNWATCH_TYPEFORM_WEBHOOK_SECRET)")
