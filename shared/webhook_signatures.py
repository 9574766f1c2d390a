"""What every webhook signature check shares: the HMAC, the constant-time comparison, the error. Pure.

Each vendor's check (services/ingest/helpdesk/signatures.py, services/surveys/vendors/signatures.py)
says which header carries what; this module computes and compares, so a fix to either
applies to all.
"""

from __future__ import annotations

import hashlib
import hmac


class SignatureError(Exception):
    """A webhook whose signature does not hold; `code` for the 401's body, `message` names the header."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def hmac_sha256(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha256).digest()


def hmac_sha1(secret: str, message: bytes) -> bytes:
    return hmac.new(secret.encode(), message, hashlib.sha1).digest()


def same_signature(expected: str, given: str) -> bool:
    """Constant-time: how long the comparison takes says nothing about where they differ."""
    return hmac.compare_digest(expected.encode(), given.strip().encode())
