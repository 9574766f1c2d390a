"""Rendering alerts for Slack and email: content, Slack's limits, fallbacks and escaping."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from services.alerts.messages import (
    SLACK_FIELD_MAX,
    SLACK_FIELDS_MAX,
    SLACK_HEADER_MAX,
    SLACK_SECTION_MAX,
    AlertView,
    build_email,
    health_url,
    message_id,
    render_email,
    render_slack,
    top_factors,
)
from shared.events import Band, Factor, RiskSignalPayload, Severity

PUBLIC = "https://churnwatch.example.com/"
WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)


def factor(measure: str, value: float | None, weight: float, detail: str) -> Factor:
    return Factor(measure=measure, value=value, weight=weight,
                  contribution=(value or 0) * weight, detail=detail)


def view(**signal_overrides: Any) -> AlertView:
    signal: dict[str, Any] = {
        "signal_type": "nps_detractor",
        "severity": Severity.HIGH,
        "dedupe_key": "acme:nps:r1",
        "summary": "NPS detractor (score 3)",
        "score": 41.6,
        "band": Band.RED,
        "previous_band": Band.YELLOW,
        "factors": [
            factor("usage", 80, 0.4, "Usage is steady against its baseline"),
            factor("nps", 0, 0.3, "Latest NPS response was a 3 (detractor)"),
            factor("tickets", 20, 0.2, "Support tickets doubled this week"),
            factor("engagement", 50, 0.1, "Last login 9 days ago"),
            factor("payments", None, 0.0, "No payment data"),
        ],
        "evidence": {"detractor_comment": "Too slow <b>since</b> the update & buggy", "score": 3},
    }
    signal.update(signal_overrides)
    return AlertView(alert_id=7, account_id="acme", account_name="Acme Corp",
                     signal=RiskSignalPayload(**signal), occurred_at=WHEN, slack_channel="#cs-acme")


def all_text(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                out.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return "\n".join(out)


def test_top_factors_are_the_biggest_point_losses_in_plain_words() -> None:
    details = [f.detail for f in top_factors(view().signal.factors)]
    assert details == [
        "Latest NPS response was a 3 (detractor)",  # lost 30 points
        "Support tickets doubled this week",  # lost 16
        "Usage is steady against its baseline",  # lost 8 (engagement lost 5)
    ]


def test_slack_message_says_which_account_what_changed_why_and_where() -> None:
    body = render_slack(view(), PUBLIC)
    assert body["text"].startswith("Acme Corp: NPS detractor (score 3)")
    assert "https://churnwatch.example.com/v1/accounts/acme/health" in body["text"]
    assert body["channel"] == "#cs-acme"
    blocks = body["blocks"]
    assert blocks[0] == {"type": "header", "text": {"type": "plain_text",
                                                    "text": "Acme Corp: NPS detractor (score 3)",
                                                    "emoji": False}}
    text = all_text(blocks)
    assert "Health score 42 (red, was yellow)" in text
    assert "• Latest NPS response was a 3 (detractor)" in text
    assert "Last login 9 days ago" not in text  # only the top three factors
    assert "Too slow &lt;b&gt;since&lt;/b&gt; the update &amp; buggy" in text
    assert "<b>" not in text
    button = blocks[-1]["elements"][0]
    assert button["url"] == "https://churnwatch.example.com/v1/accounts/acme/health"


def test_slack_message_stays_within_block_kit_limits() -> None:
    huge = "x" * 10_000
    body = render_slack(view(
        summary="a" * 500,
        factors=[factor(f"m{i}", 0, 0.1, f"{i} " + "&" * 4_000) for i in range(20)],
        evidence={f"k{i}": huge for i in range(30)},
    ), PUBLIC)
    assert body["text"]
    assert len(body["text"]) <= 1000
    for block in body["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= SLACK_HEADER_MAX
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SLACK_SECTION_MAX
            # no half entity left by truncation
            assert not block["text"]["text"].rstrip("…").endswith(("&", "&a", "&am", "&amp"))
            fields = block.get("fields", [])
            assert len(fields) <= SLACK_FIELDS_MAX
            assert all(len(f["text"]) <= SLACK_FIELD_MAX for f in fields)


def test_slack_message_without_score_factors_or_channel() -> None:
    bare = AlertView(alert_id=1, account_id="a/b c", account_name=None,
                     signal=RiskSignalPayload(signal_type="payment_failed", severity=Severity.MEDIUM,
                                              dedupe_key="k", summary="Payment failed"),
                     occurred_at=WHEN)
    body = render_slack(bare, "http://localhost:8082")
    assert "channel" not in body
    assert body["text"].startswith("a/b c: Payment failed")
    assert "http://localhost:8082/v1/accounts/a%2Fb%20c/health" in body["text"]
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context", "actions"]


def test_email_is_multipart_alternative_with_escaped_html() -> None:
    content = render_email(view(), PUBLIC)
    assert content.subject == "[Churnwatch] Acme Corp: NPS detractor (score 3)"
    assert "Latest NPS response was a 3 (detractor)" in content.text
    assert "Too slow <b>since</b> the update & buggy" in content.text
    assert "https://churnwatch.example.com/v1/accounts/acme/health" in content.text
    assert "Too slow &lt;b&gt;since&lt;/b&gt; the update &amp; buggy" in content.html
    assert "<b>since" not in content.html
    assert '<a href="https://churnwatch.example.com/v1/accounts/acme/health">' in content.html

    message = build_email(content, sender="churnwatch@example.com", recipient="csm@example.com",
                          message_id=message_id(7, 9, "churnwatch@example.com"), date=WHEN)
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Message-ID"] == "<churnwatch.alert-7.delivery-9@example.com>"
    assert parsed["To"] == "csm@example.com"


def test_email_subject_is_one_bounded_line_even_for_hostile_input() -> None:
    content = render_email(view(summary="Line one\r\nBcc: victim@example.com\n" + "z" * 400), PUBLIC)
    assert "\n" not in content.subject and "\r" not in content.subject
    assert len(content.subject) <= 200
    # Building the message must not raise on it (header injection impossible).
    build_email(content, sender="a@b.c", recipient="c@d.e", message_id="<x@y>", date=WHEN)


def test_health_url_quotes_the_account_id() -> None:
    assert health_url("http://h/", "acme corp/eu") == "http://h/v1/accounts/acme%20corp%2Feu/health"
