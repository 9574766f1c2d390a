"""Pure decisions: contacts by event time, routing, retry timing, permanent vs transient errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import aiosmtplib
import pytest

from services.alerts.contacts import Contact, contact_from_traits
from services.alerts.delivery_policy import (
    Verdict,
    classify_slack,
    classify_smtp_error,
    decide,
    network_error,
    parse_retry_after,
    retry_delay,
)
from services.alerts.routing import SLACK_WEBHOOK_CHANNEL, Channel, RoutingConfig, Target, resolve_targets
from shared.account_facts import TRAIT_TIMES_KEY, merge_traits

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


# --- contacts -------------------------------------------------------------------------------


def test_traits_merge_per_trait_by_event_time_in_any_order() -> None:
    first = ({"name": "Acme", "csm_email": "old@acme.test"}, T0)
    second = ({"csm_email": "new@acme.test"}, T0 + timedelta(hours=1))
    late_old = ({"csm_email": "stale@acme.test", "plan": "pro"}, T0 - timedelta(days=1))

    in_order: dict[str, object] = {}
    for traits, at in (first, second, late_old):
        in_order = merge_traits(in_order, traits, at)
    shuffled: dict[str, object] = {}
    for traits, at in (late_old, second, first):
        shuffled = merge_traits(shuffled, traits, at)

    assert in_order == shuffled
    contact = contact_from_traits("acme", in_order)
    assert contact == Contact("acme", "Acme", "new@acme.test", None)
    assert in_order["plan"] == "pro"  # an older event still sets a trait nobody set later
    assert TRAIT_TIMES_KEY in in_order


def test_equal_event_time_applies_and_reserved_key_is_ignored() -> None:
    merged = merge_traits({}, {"name": "A"}, T0)
    merged = merge_traits(merged, {"name": "B", TRAIT_TIMES_KEY: {"name": "2099-01-01T00:00:00+00:00"}}, T0)
    assert merged["name"] == "B"
    assert merged[TRAIT_TIMES_KEY] == {"name": T0.isoformat()}


def test_non_text_contact_traits_are_ignored() -> None:
    assert contact_from_traits("a", {"name": 42, "csm_email": "  ", "csm_slack_channel": "#cs"}) == \
        Contact("a", None, None, "#cs")


# --- routing --------------------------------------------------------------------------------


def test_routing_prefers_the_csm_and_falls_back_to_defaults() -> None:
    both = RoutingConfig(slack_configured=True, default_email="cs-team@example.com")
    csm = Contact("a", "A", "csm@example.com", "#cs-a")
    assert resolve_targets(csm, both) == [Target(Channel.SLACK, "#cs-a"),
                                          Target(Channel.EMAIL, "csm@example.com")]
    assert resolve_targets(None, both) == [Target(Channel.SLACK, SLACK_WEBHOOK_CHANNEL),
                                           Target(Channel.EMAIL, "cs-team@example.com")]
    bad_email = Contact("a", "A", "not an email", None)
    assert resolve_targets(bad_email, both)[1] == Target(Channel.EMAIL, "cs-team@example.com")


def test_no_channel_means_unroutable() -> None:
    nothing = RoutingConfig(slack_configured=False, default_email=None)
    assert resolve_targets(Contact("a"), nothing) == []
    assert resolve_targets(Contact("a", csm_email="csm@example.com"), nothing) == \
        [Target(Channel.EMAIL, "csm@example.com")]


# --- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "body", "verdict"), [
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
])
def test_slack_responses(status: int, body: str, verdict: Verdict) -> None:
    outcome = classify_slack(status, body, None)
    assert outcome.verdict is verdict
    assert outcome.status_code == status
    assert outcome.response == body
    assert outcome.reason == ("ok" if status == 200 else f"http_{status}")


def test_slack_429_carries_retry_after() -> None:
    assert classify_slack(429, "rate_limited", 7.0).retry_after == 7.0


@pytest.mark.parametrize(("exc", "verdict", "reason"), [
    (aiosmtplib.SMTPDataError(550, "mailbox unavailable"), Verdict.FAILED, "smtp_550"),
    (aiosmtplib.SMTPSenderRefused(553, "no", "x@y"), Verdict.FAILED, "smtp_553"),
    (aiosmtplib.SMTPDataError(451, "try later"), Verdict.RETRY, "smtp_451"),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no such user", "a@b")]),
     Verdict.FAILED, "smtp_550"),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(450, "greylisted", "a@b")]),
     Verdict.RETRY, "smtp_450"),
    (aiosmtplib.SMTPServerDisconnected("gone"), Verdict.RETRY, "network"),
    (aiosmtplib.SMTPConnectError("refused"), Verdict.RETRY, "network"),
    (aiosmtplib.SMTPReadTimeoutError("slow"), Verdict.RETRY, "timeout"),
])
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
    assert (decide(permanent, 1, 8, 0.5).status, decide(permanent, 1, 8, 0.5).reason) == \
        ("failed", "http_404")
    transient = classify_slack(500, "rollup_error")
    retry = decide(transient, 2, 8, 0.0)
    assert (retry.status, retry.outcome, retry.delay_seconds) == ("pending", "retry", 2.0)
    last = decide(transient, 8, 8, 0.0)
    assert (last.status, last.outcome, last.reason) == ("failed", "failed", "max_attempts")
