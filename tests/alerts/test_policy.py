"""Pure decisions: retry timing, permanent vs transient errors, what a response proves."""

from __future__ import annotations

from datetime import UTC, datetime

import aiosmtplib
import pytest

from services.alerts.delivery.policy import (
    Verdict,
    classify_slack,
    classify_slack_api,
    classify_smtp_error,
    decide,
    network_error,
    parse_retry_after,
    retry_delay,
)

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


# --- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "verdict"),
    [
        (200, "ok", Verdict.SENT),
        (400, "invalid_payload", Verdict.FAILED),
        (400, "user_not_found", Verdict.FAILED),
        (403, "action_prohibited", Verdict.FAILED),
        (404, "channel_not_found", Verdict.FAILED),
        (410, "channel_is_archived", Verdict.FAILED),
        (429, "rate_limited", Verdict.RETRY),
        (500, "rollup_error", Verdict.RETRY),
        (502, "bad gateway", Verdict.RETRY),
        (408, "timeout", Verdict.RETRY),
    ],
)
def test_slack_responses(status: int, body: str, verdict: Verdict) -> None:
    outcome = classify_slack(status, body, None)
    assert outcome.verdict is verdict
    assert outcome.status_code == status
    assert outcome.response == body
    assert outcome.reason == ("ok" if status == 200 else f"http_{status}")


def test_slack_429_carries_retry_after() -> None:
    assert classify_slack(429, "rate_limited", 7.0).retry_after == 7.0


@pytest.mark.parametrize(
    ("exc", "verdict", "reason"),
    [
        (aiosmtplib.SMTPDataError(550, "mailbox unavailable"), Verdict.FAILED, "smtp_550"),
        (aiosmtplib.SMTPSenderRefused(553, "no", "x@y"), Verdict.FAILED, "smtp_553"),
        (aiosmtplib.SMTPDataError(451, "try later"), Verdict.RETRY, "smtp_451"),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b")]),
            Verdict.FAILED,
            "smtp_550",
        ),
        (
            aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "greylisted", "a@b")]),
            Verdict.RETRY,
            "smtp_450",
        ),
        (aiosmtplib.SMTPServerDisconnected("gone"), Verdict.RETRY, "network"),
        (aiosmtplib.SMTPConnectError("refused"), Verdict.RETRY, "network"),
        (aiosmtplib.SMTPReadTimeoutError("slow"), Verdict.RETRY, "timeout"),
    ],
)
def test_smtp_errors(exc: Exception, verdict: Verdict, reason: str) -> None:
    outcome = classify_smtp_error(exc)
    assert (outcome.verdict, outcome.reason) == (verdict, reason)


def test_network_errors_are_retried() -> None:
    assert network_error(ConnectionRefusedError("refused")).verdict is Verdict.RETRY
    assert network_error(TimeoutError()).reason == "timeout"


def test_retry_after_header_forms() -> None:
    assert parse_retry_after("1", T0) == 1.0
    assert parse_retry_after(" 30 ", T0) == 30.0
    assert parse_retry_after("Fri, 20 Nov 2026 10:00:05 GMT", T0) == 5.0
    assert parse_retry_after("Fri, 20 Nov 2026 09:00:00 GMT", T0) == 0.0
    assert parse_retry_after("soon", T0) is None
    assert parse_retry_after(None, T0) is None


# --- backoff --------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    lows = [retry_delay(n, None, 0.0) for n in range(1, 6)]
    highs = [retry_delay(n, None, 0.999999) for n in range(1, 6)]
    assert lows == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert all(abs(h - 2 * lo) < 1e-4 for lo, h in zip(lows, highs, strict=True))
    assert retry_delay(40, None, 0.999999) <= 900.0


def test_retry_after_is_honoured_with_a_little_spread() -> None:
    assert retry_delay(1, 1.0, 0.0) == 1.0
    assert 1.0 <= retry_delay(5, 1.0, 0.99) <= 1.1
    assert retry_delay(1, 10_000.0, 0.5) == 900.0


def test_decisions() -> None:
    ok = classify_slack(200, "ok")
    assert decide(ok, 1, 8, 0.5).status == "sent"
    permanent = classify_slack(404, "channel_not_found")
    assert (decide(permanent, 1, 8, 0.5).status, decide(permanent, 1, 8, 0.5).reason) == (
        "failed",
        "http_404",
    )
    transient = classify_slack(500, "rollup_error")
    retry = decide(transient, 2, 8, 0.0)
    assert (retry.status, retry.outcome, retry.delay_seconds) == ("pending", "retry", 2.0)
    last = decide(transient, 8, 8, 0.0)
    assert (last.status, last.outcome, last.reason) == ("failed", "failed", "max_attempts")


# --- the Web API and doubt ------------------------------------------------------------------


def test_slack_api_answers() -> None:
    ok = classify_slack_api(200, {"ok": True, "channel": "C1", "ts": "1.2"}, "{}")
    assert (ok.verdict, ok.external_id, ok.external_channel) == (Verdict.SENT, "1.2", "C1")
    missing = classify_slack_api(200, {"ok": False, "error": "channel_not_found"}, "{}")
    assert (missing.verdict, missing.reason) == (Verdict.FAILED, "channel_not_found")
    transient = classify_slack_api(200, {"ok": False, "error": "internal_error"}, "{}")
    assert transient.verdict is Verdict.RETRY
    limited = classify_slack_api(429, {"ok": False, "error": "ratelimited"}, "{}", 3.0)
    assert (limited.verdict, limited.retry_after, limited.in_doubt) == (Verdict.RETRY, 3.0, False)
    # A 5xx answer says the message was not posted: retried, not in doubt. A gateway timeout
    # or an unreadable success may hide a posted message: the next attempt checks first.
    for status in (500, 502, 503):
        error = classify_slack_api(status, {"ok": False, "error": "internal_error"}, "{}")
        assert (error.verdict, error.in_doubt) == (Verdict.RETRY, False)
        assert not classify_slack_api(status, None, "<html>").in_doubt
    assert classify_slack_api(504, None, "").in_doubt
    assert classify_slack_api(200, None, "<html>").in_doubt


def test_only_requests_that_may_have_left_are_in_doubt() -> None:
    import httpx

    for status in (500, 502, 503):
        answered = classify_slack(status, "rollup_error")
        assert (answered.verdict, answered.in_doubt) == (Verdict.RETRY, False)
    assert classify_slack(504, "gateway timeout").in_doubt
    assert not network_error(httpx.ConnectError("refused")).in_doubt
    assert network_error(httpx.ReadTimeout("slow")).in_doubt
    assert not classify_smtp_error(aiosmtplib.SMTPConnectError("refused")).in_doubt
    assert classify_smtp_error(aiosmtplib.SMTPServerDisconnected("gone")).in_doubt
