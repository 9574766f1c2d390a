# ruff: noqa: RUF001  (the typographic minus sign is what these tests check)
"""Rendering alerts and digests for Slack and email: content, Slack's limits, fallbacks, escaping."""

from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from services.alerts.delivery.outbox import Purpose
from services.alerts.render.messages import (
    SLACK_BLOCK_ID_MAX,
    SLACK_BLOCKS_MAX,
    SLACK_FIELD_MAX,
    SLACK_FIELDS_MAX,
    SLACK_HEADER_MAX,
    SLACK_SECTION_MAX,
    ActionLinks,
    AlertView,
    DigestAccount,
    DigestLine,
    ReasonLine,
    account_url,
    build_email,
    change_line,
    evidence_lines,
    headline,
    message_id,
    render_email,
    render_email_digest,
    render_slack,
    render_slack_digest,
    top_factors,
)
from services.alerts.render.playbook import BUILT_IN, DEFAULT, next_step
from services.alerts.routing.config import RoutingConfig
from shared.events import Band, Factor, RiskSignalPayload, Severity
from tests.scoring.events import T0, feed, nps, run, usage

WHEN = datetime(2026, 11, 20, 10, 30, tzinfo=UTC)
ACCOUNT_URL = "https://crm.example.com/accounts/acme"
LINKS = ActionLinks(
    "https://alerts.example.com/v1/alert-links/ack",
    "https://alerts.example.com/v1/alert-links/snooze",
    "https://alerts.example.com/v1/alert-links/feedback",
    "https://alerts.example.com/v1/alert-links/resolve",
)


def factor(measure: str, value: float | None, weight: float, detail: str) -> Factor:
    return Factor(
        measure=measure, value=value, weight=weight, contribution=(value or 0) * weight, detail=detail
    )


def view(purpose: Purpose = Purpose.ALERT, **signal_overrides: Any) -> AlertView:
    signal: dict[str, Any] = {
        "signal_type": "entered_red",
        "severity": Severity.HIGH,
        "dedupe_key": "entered_red:acme:e1",
        "summary": "turned red: usage −45%, detractor NPS 3",
        "score": 38.0,
        "previous_score": 55.0,
        "band": Band.RED,
        "previous_band": Band.YELLOW,
        "segment": "enterprise",
        "factors": [
            factor("usage", 80, 0.4, "Usage is steady against its baseline"),
            factor("nps", 0, 0.3, "Latest NPS response was a 3 (detractor)"),
            factor("tickets", 20, 0.2, "Support tickets doubled this week"),
            factor("engagement", 50, 0.1, "Last login 9 days ago"),
            factor("payments", None, 0.0, "No payment data"),
        ],
        "evidence": {
            "comment": "Too slow <b>since</b> the update & buggy",
            "ticket_subject": "Export fails",
            "caused_by_event_id": "e-123",
            "response_id": "r1",
        },
    }
    signal.update(signal_overrides)
    return AlertView(
        alert_id=7,
        account_id="acme",
        account_name="Acme Corp",
        signal=RiskSignalPayload(**signal),
        occurred_at=WHEN,
        account_url=ACCOUNT_URL,
        next_step=BUILT_IN["entered_red"],
        purpose=purpose,
        slack_channel="#cs-acme",
        mention="U0JANE",
        links=LINKS,
    )


def all_text(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []
    for block in blocks:
        text = block.get("text")
        if isinstance(text, dict):
            out.append(text["text"])
        out += [f["text"] for f in block.get("fields", [])]
        out += [e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(out)


def test_headline_reads_on_from_the_account_name() -> None:
    assert headline(view()) == "Acme Corp turned red: usage −45%, detractor NPS 3"
    assert headline(view(summary="NPS detractor (score 3)")) == "Acme Corp: NPS detractor (score 3)"
    assert headline(view(Purpose.ESCALATION)).startswith("Escalated: Acme Corp turned red")


def test_change_line_shows_score_delta_and_band() -> None:
    assert change_line(view().signal) == "Health 38 (−17 from 55) · red, was yellow"
    assert change_line(view(previous_score=None, previous_band=None).signal) == "Health 38 · red"
    assert change_line(view(score=None, band=None, previous_band=None).signal) is None


def test_top_factors_are_the_biggest_point_losses_with_data() -> None:
    names = [f.measure for f in top_factors(view().signal.factors)]
    assert names == ["nps", "tickets", "usage"]


def test_slack_message_has_everything_a_csm_needs() -> None:
    body = render_slack(view())
    assert body["text"].startswith("<@U0JANE> Acme Corp turned red: usage −45%, detractor NPS 3")
    assert "Health 38 (−17 from 55) · red, was yellow" in body["text"]
    blocks = body["blocks"]
    assert blocks[0] == {
        "type": "header",
        "text": {
            "type": "plain_text",
            "emoji": True,
            "text": "Acme Corp turned red: usage −45%, detractor NPS 3",
        },
    }
    text = all_text(blocks)
    assert f"<{ACCOUNT_URL}|Acme Corp>" in text  # the account, linked
    assert "• Latest NPS response was a 3 (detractor)" in text
    assert "Usage is steady" in text and "Last login 9 days ago" not in text  # only the top three
    assert "Too slow &lt;b&gt;since&lt;/b&gt; the update &amp; buggy" in text  # user text escaped
    assert "*Ticket subject:* Export fails" in text
    assert "e-123" not in text and "Response id" not in text  # ids are for the API, not the CSM
    assert "*Suggested next step*\nCall your champion" in text
    actions = next(b for b in blocks if b["type"] == "actions")
    assert [(e["text"]["text"], e["url"]) for e in actions["elements"]] == [
        ("Open account", ACCOUNT_URL),
        ("Acknowledge", LINKS.acknowledge),
        ("Snooze…", LINKS.snooze),
        ("Resolve…", LINKS.resolve),
        ("Not useful?", LINKS.feedback),
    ]
    assert len(actions["block_id"]) <= SLACK_BLOCK_ID_MAX


def test_slack_message_stays_within_block_kit_limits() -> None:
    huge = "x" * 10_000
    body = render_slack(
        view(
            summary="a" * 500,
            segment="s" * 3000,
            factors=[factor(f"m{i}", 0, 0.1, f"{i} " + "&" * 4_000) for i in range(20)],
            evidence={f"k{i}": huge + "<" for i in range(30)},
        )
    )
    assert body["text"] and len(body["text"]) <= 1000
    assert len(body["blocks"]) <= SLACK_BLOCKS_MAX
    for block in body["blocks"]:
        assert len(block.get("block_id", "")) <= SLACK_BLOCK_ID_MAX
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= SLACK_HEADER_MAX
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SLACK_SECTION_MAX
            assert not block["text"]["text"].rstrip("…").endswith(("&", "&a", "&am", "&amp"))
            fields = block.get("fields", [])
            assert len(fields) <= SLACK_FIELDS_MAX
            assert all(len(f["text"]) <= SLACK_FIELD_MAX for f in fields)


def test_version_one_signal_of_an_unknown_type_still_renders_with_a_default_next_step() -> None:
    v1 = RiskSignalPayload.model_validate(
        {"signal_type": "usage_drop", "severity": "medium", "dedupe_key": "k", "summary": "Usage fell 40%"}
    )
    config = RoutingConfig()
    bare = AlertView(
        alert_id=1,
        account_id="a/b c",
        account_name=None,
        signal=v1,
        occurred_at=WHEN,
        account_url=account_url(None, "http://localhost:8082", "a/b c"),
        next_step=next_step(config, v1.signal_type),
    )
    body = render_slack(bare)
    assert body["text"] == "a/b c: Usage fell 40%"
    assert "http://localhost:8082/v1/accounts/a%2Fb%20c/health" in all_text(body["blocks"])
    assert DEFAULT in all_text(body["blocks"])
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "section", "context", "actions"]


def test_playbook_text_comes_from_the_yaml_first() -> None:
    config = RoutingConfig.model_validate(
        {"playbook": {"entered_red": "Page the account team.", "default": "Look into it."}}
    )
    assert next_step(config, "entered_red") == "Page the account team."
    assert next_step(config, "detractor_response") == BUILT_IN["detractor_response"]
    assert next_step(config, "brand_new_type") == "Look into it."


def test_email_has_text_and_html_parts_with_the_same_content() -> None:
    content = render_email(view())
    assert content.subject == "[Churnwatch] Acme Corp turned red: usage −45%, detractor NPS 3"
    for part in (content.text, content.html):
        assert "Latest NPS response was a 3 (detractor)" in part
        assert "Call your champion" in part
        assert LINKS.acknowledge in part and LINKS.snooze in part and LINKS.feedback in part
        assert LINKS.resolve in part
        assert ACCOUNT_URL in part
    assert "Too slow <b>since</b> the update & buggy" in content.text
    assert "Too slow &lt;b&gt;since&lt;/b&gt; the update &amp; buggy" in content.html
    assert "Health 38 (−17 from 55) · red, was yellow" in content.text

    message = build_email(
        content,
        sender="churnwatch@example.com",
        recipient="csm@example.com",
        message_id=message_id("alert:7:alert:1:email:csm@example.com", 9, "churnwatch@example.com"),
        date=WHEN,
        in_reply_to="<first@example.com>",
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["In-Reply-To"] == "<first@example.com>"
    # Stable for every attempt of the delivery, in any process.
    assert parsed["Message-ID"] == message_id(
        "alert:7:alert:1:email:csm@example.com", 9, "churnwatch@example.com"
    )


def test_email_subject_is_one_bounded_line_even_for_hostile_input() -> None:
    content = render_email(view(summary="Line one\r\nBcc: victim@example.com\n" + "z" * 400))
    assert "\n" not in content.subject and "\r" not in content.subject
    assert len(content.subject) <= 200
    build_email(content, sender="a@b.c", recipient="c@d.e", message_id="<x@y>", date=WHEN)


def digest_accounts() -> list[DigestAccount]:
    def line(
        severity: Severity, summary: str, minutes: int, reason: str = "digest", state: str = "open"
    ) -> DigestLine:
        return DigestLine(severity, summary, WHEN + timedelta(minutes=minutes), reason, state)

    return [
        DigestAccount("small", "Small Co", "u1", "step", [line(Severity.LOW, "Usage dipped", 1)]),
        DigestAccount(
            "globex",
            "Globex",
            "u2",
            "step",
            [line(Severity.MEDIUM, "Tickets up", 5), line(Severity.HIGH, "Champion left", 9, "cooldown")],
        ),
        DigestAccount(
            "initech", "Initech", "u3", "step", [line(Severity.MEDIUM, "Payment late", 2, state="resolved")]
        ),
    ]


def test_digest_orders_accounts_and_lines_by_severity() -> None:
    content = render_email_digest("jane@example.com", digest_accounts(), "2026-11-21")
    assert content.subject == "[Churnwatch] Daily digest 2026-11-21: 4 signals on 3 accounts"
    text = content.text
    assert text.index("Globex") < text.index("Initech") < text.index("Small Co")
    assert text.index("[high] Champion left") < text.index("[medium] Tickets up")
    assert "raised again soon after an earlier alert" in text
    assert "since resolved" in text
    slack = render_slack_digest("jane@example.com", digest_accounts(), "2026-11-21")
    sections = [b["text"]["text"] for b in slack["blocks"] if b["type"] == "section"]
    assert [s.split("|")[1].split(">")[0] for s in sections] == ["Globex", "Initech", "Small Co"]


def test_slack_digest_of_many_accounts_stays_under_fifty_blocks() -> None:
    many = [
        DigestAccount(
            f"a{i}",
            f"Account {i}",
            f"u{i}",
            "step",
            [DigestLine(Severity.LOW, "x" * 200, WHEN, "digest", "open")],
        )
        for i in range(120)
    ]
    body = render_slack_digest("team", many, "2026-11-21")
    assert len(body["blocks"]) <= SLACK_BLOCKS_MAX
    assert "…and 80 more accounts" in all_text(body["blocks"])


def test_real_engine_detractor_renders_evidence_in_words_not_json() -> None:
    # Real engine output, not a fixture: a detractor that also dropped the band and the score.
    engine = run([usage("u", "acme", T0), nps("n1", "acme", "r1", 10, T0)], account_id="acme")
    engine.take_outputs()
    later = T0 + timedelta(hours=1)
    feed(engine, [nps("n2", "acme", "r2", 1, later, user_id="u2", comment="Moving to a cheaper tool")])
    [(_, detractor)] = engine.take_outputs().signals
    assert detractor.signal_type == "detractor_response"

    assert evidence_lines(detractor.evidence) == [
        ("Survey", "NPS"),
        ("Answer", "1"),
        ("Comment", "Moving to a cheaper tool"),
        ("Respondent", "u2"),
        ("Submitted at", f"{later:%Y-%m-%d %H:%M} UTC"),
        ("Also raised", "band dropped, score drop"),
    ]
    view = AlertView(
        alert_id=1,
        account_id="acme",
        account_name="Acme Corp",
        signal=detractor,
        occurred_at=later,
        account_url=ACCOUNT_URL,
        next_step=BUILT_IN["detractor_response"],
    )
    slack = all_text(render_slack(view)["blocks"])
    email = render_email(view).text
    for text in (slack, email):
        assert "[" not in text and "{" not in text  # no raw JSON lists or objects
    # The health score appears once, as health, never among the survey's evidence.
    assert "Health score*\n" in slack and "Score:" not in slack
    assert "Answer:* 1" in slack and "Answer: 1" in email


def test_an_alert_with_several_reasons_lists_them_all_in_words_worst_first() -> None:
    reasons = (
        ReasonLine(Severity.HIGH, "entered_red", "turned red: usage −45%, detractor NPS 3"),
        ReasonLine(Severity.MEDIUM, "competitor_mentioned", "competitor Globex named in ticket T-9"),
        ReasonLine(Severity.LOW, "ticket_spike", "support tickets at 2.1x the usual <rate>", clearing=True),
    )
    several = replace(view(), reasons=reasons, occurrences=5, first_seen_at=WHEN - timedelta(days=1))
    body = render_slack(several)
    assert headline(several) == "Acme Corp turned red: usage −45%, detractor NPS 3 (and 2 more reasons)"
    assert body["blocks"][0]["text"]["text"] == headline(several)
    sections = [b["text"]["text"] for b in body["blocks"] if b["type"] == "section"]
    assert sections[1] == (
        "*Reasons, worst first*\n"
        "• High · entered red: turned red: usage −45%, detractor NPS 3\n"
        "• Medium · competitor mentioned: competitor Globex named in ticket T-9\n"
        "• Low · ticket spike: support tickets at 2.1x the usual &lt;rate&gt; (cleared, confirming)"
    )
    [context] = [b for b in body["blocks"] if b["type"] == "context"]
    assert context["elements"][0]["text"] == (
        "Open since 2026-11-19 10:30 UTC: 5 signals, 3 reasons (latest 2026-11-20 10:30 UTC)"
    )
    mail = render_email(several)
    assert mail.subject == f"[Churnwatch] {headline(several)}"
    assert (
        "\nReasons, worst first\n"
        "  - High · entered red: turned red: usage −45%, detractor NPS 3\n"
        "  - Medium · competitor mentioned: competitor Globex named in ticket T-9\n"
        "  - Low · ticket spike: support tickets at 2.1x the usual <rate> (cleared, confirming)\n"
    ) in mail.text
    escaped = "<li>Low · ticket spike: support tickets at 2.1x the usual &lt;rate&gt; (cleared, confirming)"
    assert escaped in mail.html
    # One reason: the headline names it, no list.
    single = replace(view(), reasons=reasons[:1])
    assert "Reasons, worst first" not in all_text(render_slack(single)["blocks"])
    assert "more reason" not in headline(single)


def test_the_accounts_mrr_is_in_the_slack_fields_and_the_email_facts_line() -> None:
    with_mrr = replace(view(), mrr=1_250.0)
    assert "*MRR*\n1,250" in all_text(render_slack(with_mrr)["blocks"])
    content = render_email(with_mrr)
    for part in (content.text, content.html):
        assert "Churn risk · severity high · entered red · segment enterprise · MRR 1,250" in part
    assert "MRR" not in render_email(view()).text  # unknown revenue is left out, not shown as 0
