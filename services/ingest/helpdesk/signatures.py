"""Webhook signature checks, one per help desk. Pure: the caller passes the clock.

Each check raises `SignatureError` naming what was wrong (missing header, malformed,
stale, mismatch) so the sender's operator can fix it from the 401 alone. Every digest
comparison is constant-time.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from shared.webhook_signatures import SignatureError, hmac_sha1, hmac_sha256, same_signature


def zendesk_signature(secret: str, timestamp: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, timestamp + body)), as Zendesk sends it."""
    return base64.b64encode(hmac_sha256(secret, timestamp.encode() + body)).decode()


def intercom_signature(secret: str, body: bytes) -> str:
    """`sha1=<hex HMAC-SHA1(secret, body)>`, Intercom's X-Hub-Signature."""
    return "sha1=" + hmac_sha1(secret, body).hex()


def generic_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, Churnwatch's X-Churnwatch-Signature.

    The timestamp (`X-Churnwatch-Signature-Timestamp`) is signed with the body, so a captured
    delivery cannot be replayed later with a fresh timestamp.
    """
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac_sha256(secret, signed).hex()


def parse_timestamp(value: str, header: str = "X-Zendesk-Webhook-Signature-Timestamp") -> datetime:
    """ISO 8601 (`2024-04-17T17:18:10Z`, as Zendesk sends it) or unix seconds."""
    text = value.strip()
    try:
        if text.isdigit():
            return datetime.fromtimestamp(int(text), UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError) as exc:
        raise SignatureError("invalid_signature_timestamp",
                             f"{header} {value!r} is not an ISO 8601 time or unix seconds") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def verify_zendesk(secret: str, body: bytes, signature: str | None, timestamp: str | None,
                   *, now: datetime, max_age_seconds: int) -> None:
    if not signature:
        raise SignatureError("missing_signature", "X-Zendesk-Webhook-Signature header is missing")
    if not timestamp:
        raise SignatureError("missing_signature_timestamp",
                             "X-Zendesk-Webhook-Signature-Timestamp header is missing")
    # The signature is checked before the age so a forged request learns nothing about timing.
    if not same_signature(zendesk_signature(secret, timestamp, body), signature):
        raise SignatureError("invalid_signature",
                             "X-Zendesk-Webhook-Signature does not match the body and timestamp "
                             "for the configured secret")
    _check_age(timestamp, "X-Zendesk-Webhook-Signature-Timestamp", now, max_age_seconds)


def _check_age(timestamp: str, header: str, now: datetime, max_age_seconds: int) -> None:
    age = abs((now - parse_timestamp(timestamp, header)).total_seconds())
    if age > max_age_seconds:
        raise SignatureError("stale_signature",
                             f"{header} is {age:.0f} s away from now; "
                             f"at most {max_age_seconds} s is accepted (replay protection)")


def verify_intercom(secret: str, body: bytes, signature: str | None) -> None:
    if not signature:
        raise SignatureError("missing_signature", "X-Hub-Signature header is missing")
    if not signature.strip().startswith("sha1="):
        raise SignatureError("invalid_signature", "X-Hub-Signature must be sha1=<hex digest>")
    if not same_signature(intercom_signature(secret, body), signature):
        raise SignatureError("invalid_signature",
                             "X-Hub-Signature does not match the body for the configured secret")


def verify_generic(secret: str, body: bytes, signature: str | None, timestamp: str | None,
                   *, now: datetime, max_age_seconds: int) -> None:
    if not signature:
        raise SignatureError("missing_signature", "X-Churnwatch-Signature header is missing")
    if not timestamp:
        raise SignatureError("missing_signature_timestamp",
                             "X-Churnwatch-Signature-Timestamp header is missing")
    if not signature.strip().startswith("sha256="):
        raise SignatureError("invalid_signature", "X-Churnwatch-Signature must be "
                             "sha256=<hex HMAC-SHA256 of timestamp + '.' + body>")
    if not same_signature(generic_signature(secret, timestamp, body), signature):
        raise SignatureError("invalid_signature",
                             "X-Churnwatch-Signature does not match the timestamp and body for the "
                             "configured secret")
    _check_age(timestamp, "X-Churnwatch-Signature-Timestamp", now, max_age_seconds)
