"""Sending one email through the configured SMTP server, and what a failure means.

Alerts and surveys both mail people; both need the same connection settings and the same
reading of an SMTP error: a 5xx reply is permanent (the address or the message is refused),
everything else may pass on a later attempt.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from shared.settings import Settings

MESSAGE_MAX = 1000


async def send_email(settings: Settings, message: EmailMessage, timeout: float) -> str:
    """Hand `message` to the SMTP server; its reply. Raises aiosmtplib's errors, OSError or
    TimeoutError (read them with `smtp_failure`)."""
    _, reply = await asyncio.wait_for(
        aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            use_tls=settings.smtp_use_tls,
            start_tls=False if settings.smtp_use_tls else settings.smtp_starttls,
            timeout=timeout,
        ),
        timeout,
    )
    return reply


@dataclass(frozen=True)
class SmtpFailure:
    reason: str  # a metric label: "smtp_550", "timeout", "network"
    code: int | None
    permanent: bool
    # The server may have taken the message before the failure (a timeout or a dropped
    # connection after DATA); a connect error means it certainly did not.
    maybe_sent: bool
    message: str


def smtp_failure(exc: BaseException) -> SmtpFailure:
    message = (str(exc) or type(exc).__name__)[:MESSAGE_MAX]
    code: int | None = None
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        # One recipient per message; if several were ever refused, retry unless all are final.
        code = min(codes) if codes else None
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code
    if code is not None:
        return SmtpFailure(f"smtp_{code}", code, 500 <= code < 600, False, message)
    if isinstance(exc, TimeoutError):
        return SmtpFailure("timeout", None, False, True, message)
    never_connected = isinstance(exc, aiosmtplib.SMTPConnectError | ConnectionRefusedError)
    return SmtpFailure("network", None, False, not never_connected, message)
