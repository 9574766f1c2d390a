"""What an attempt's result means for a delivery: sent, try again later, or give up. Pure.

Permanent errors are the ones a retry cannot fix (Slack says the payload, channel or
webhook is wrong; an SMTP server answers 5xx); retrying them would only delay the page
telling ops that a route is broken. Everything else (timeouts, 5xx, 429, SMTP 4xx) is
retried with exponential backoff and jitter, or after exactly what `Retry-After` asks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

import aiosmtplib

RESPONSE_MAX = 1000
SLACK_PERMANENT = frozenset({400, 403, 404, 410})
BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 900.0


class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str  # a metric label: bounded set ("ok", "http_429", "smtp_550", "network", ...)
    status_code: int | None = None
    response: str = ""
    retry_after: float | None = None


def classify_slack(status: int, body: str, retry_after: float | None = None) -> Outcome:
    response = body[:RESPONSE_MAX]
    if 200 <= status < 300:
        return Outcome(Verdict.SENT, "ok", status, response)
    reason = f"http_{status}"
    if status == 429:
        return Outcome(Verdict.RETRY, reason, status, response, retry_after)
    if status in SLACK_PERMANENT or (400 <= status < 500 and status != 408):
        return Outcome(Verdict.FAILED, reason, status, response)
    return Outcome(Verdict.RETRY, reason, status, response, retry_after)


def classify_smtp_error(exc: Exception) -> Outcome:
    """aiosmtplib's errors: a 5xx reply is permanent; 4xx, disconnects and timeouts are not."""
    message = str(exc)[:RESPONSE_MAX]
    code: int | None = None
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        # One recipient per delivery; if several were ever refused, retry unless all are final.
        code = min(codes) if codes else None
    elif isinstance(exc, aiosmtplib.SMTPResponseException):
        code = exc.code
    if code is not None:
        verdict = Verdict.FAILED if 500 <= code < 600 else Verdict.RETRY
        return Outcome(verdict, f"smtp_{code}", code, message)
    if isinstance(exc, TimeoutError):
        return Outcome(Verdict.RETRY, "timeout", None, message)
    return Outcome(Verdict.RETRY, "network", None, message or type(exc).__name__)


def network_error(exc: Exception) -> Outcome:
    reason = "timeout" if isinstance(exc, TimeoutError) or "Timeout" in type(exc).__name__ else "network"
    return Outcome(Verdict.RETRY, reason, None, (str(exc) or type(exc).__name__)[:RESPONSE_MAX])


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


def retry_delay(
    attempts: int,
    retry_after: float | None,
    jitter: float,
    base: float = BASE_DELAY_SECONDS,
    cap: float = MAX_DELAY_SECONDS,
) -> float:
    """Seconds until the next attempt after `attempts` tries; `jitter` is uniform in [0, 1).

    The server's `Retry-After` wins (plus up to 10% so a burst of 429s does not return as
    one burst). Otherwise "equal jitter": half the exponential step fixed, half random.
    """
    if retry_after is not None:
        return min(retry_after * (1 + 0.1 * jitter), cap)
    step = min(base * 2.0 ** max(attempts - 1, 0), cap)
    return step / 2 + step / 2 * jitter


@dataclass(frozen=True)
class Decision:
    status: str  # the delivery's next status: sent, pending (retry) or failed
    outcome: str  # metric label: sent, retry or failed
    reason: str
    delay_seconds: float | None = None


def decide(outcome: Outcome, attempts: int, max_attempts: int, jitter: float) -> Decision:
    if outcome.verdict is Verdict.SENT:
        return Decision("sent", "sent", outcome.reason)
    if outcome.verdict is Verdict.FAILED:
        return Decision("failed", "failed", outcome.reason)
    if attempts >= max_attempts:
        return Decision("failed", "failed", "max_attempts")
    return Decision("pending", "retry", outcome.reason,
                    retry_delay(attempts, outcome.retry_after, jitter))
