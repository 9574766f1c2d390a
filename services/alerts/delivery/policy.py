"""What an attempt's result means for a delivery: sent, try again later, or give up. Pure.

Permanent errors are the ones a retry cannot fix (Slack says the payload, channel or
webhook is wrong; an SMTP server answers 5xx); retrying them would only delay the page
telling ops that a route is broken. Everything else (timeouts, 5xx, 429, SMTP 4xx) is
retried with exponential backoff and jitter, or after exactly what `Retry-After` asks.

"In doubt" is narrower than "retry": only an attempt whose request may have been taken
without our hearing so (a timeout or a dropped connection after sending, a gateway timeout,
a success answer we cannot read). An answer such as Slack's 500, 502 or 503 says the message
was not posted, so the next attempt is an ordinary one: no history look-up, no "sent again"
note on the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum

from shared.runtime.backoff import exponential_backoff
from shared.smtp import smtp_failure

RESPONSE_MAX = 1000
SLACK_PERMANENT = frozenset({400, 403, 404, 410})
# A gateway that timed out waiting for Slack cannot say whether Slack went on to post.
GATEWAY_TIMEOUT = 504
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
    # The request may have reached the receiver although we got no answer (a read timeout,
    # a dropped connection after sending): the next attempt must first check, where it can.
    in_doubt: bool = False
    external_id: str | None = None  # Slack message ts, email Message-ID
    external_channel: str | None = None  # the Slack channel id the message landed in


# Slack Web API errors (HTTP 200, "ok": false) worth retrying; every other error is final.
SLACK_API_TRANSIENT = frozenset(
    {
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "ratelimited",
        "rate_limited",
        "team_added_to_org",
    }
)


def classify_slack(status: int, body: str, retry_after: float | None = None) -> Outcome:
    response = body[:RESPONSE_MAX]
    if 200 <= status < 300:
        return Outcome(Verdict.SENT, "ok", status, response)
    reason = f"http_{status}"
    if status == 429:
        return Outcome(Verdict.RETRY, reason, status, response, retry_after)
    if status in SLACK_PERMANENT or (400 <= status < 500 and status != 408):
        return Outcome(Verdict.FAILED, reason, status, response)
    return Outcome(Verdict.RETRY, reason, status, response, retry_after, in_doubt=status == GATEWAY_TIMEOUT)


def classify_slack_api(
    status: int, body: dict[str, object] | None, text: str, retry_after: float | None = None
) -> Outcome:
    """chat.postMessage: errors come as HTTP 200 with `{"ok": false, "error": ...}`; 429 and 5xx as HTTP."""
    response = text[:RESPONSE_MAX]
    if status == 429 or status >= 500 or body is None:
        reason = f"http_{status}" if status != 200 else "unreadable_response"
        # A 2xx we cannot read may be a posted message; a 5xx (but a gateway's 504) is not.
        in_doubt = 200 <= status < 300 or status == GATEWAY_TIMEOUT
        return Outcome(Verdict.RETRY, reason, status, response, retry_after, in_doubt=in_doubt)
    if body.get("ok") is True:
        ts, channel = body.get("ts"), body.get("channel")
        return Outcome(
            Verdict.SENT,
            "ok",
            status,
            response,
            external_id=str(ts) if ts else None,
            external_channel=str(channel) if channel else None,
        )
    error = str(body.get("error") or "unknown_error")[:60]
    verdict = Verdict.RETRY if error in SLACK_API_TRANSIENT else Verdict.FAILED
    return Outcome(verdict, error, status, response, retry_after, in_doubt=error == "fatal_error")


def classify_smtp_error(exc: Exception) -> Outcome:
    """aiosmtplib's errors: a 5xx reply is permanent; 4xx, disconnects and timeouts are not."""
    failure = smtp_failure(exc)
    return Outcome(Verdict.FAILED if failure.permanent else Verdict.RETRY, failure.reason,
                   failure.code, failure.message, in_doubt=failure.maybe_sent)


def network_error(exc: Exception) -> Outcome:
    """A failed HTTP exchange; in doubt unless the request certainly never left (connect errors)."""
    name = type(exc).__name__
    reason = "timeout" if isinstance(exc, TimeoutError) or "Timeout" in name else "network"
    never_sent = "Connect" in name or isinstance(exc, ConnectionRefusedError)
    return Outcome(Verdict.RETRY, reason, None, (str(exc) or name)[:RESPONSE_MAX], in_doubt=not never_sent)


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
    step = exponential_backoff(attempts - 1, base, cap)
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
    return Decision("pending", "retry", outcome.reason, retry_delay(attempts, outcome.retry_after, jitter))
