"""The rules behind invitations, pure: quiet period, cadence, audience, links, definitions,
segments, attribution, insight and what the respondent sees."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.surveys.insight.figures import figures, month_bounds, month_changes
from services.surveys.invitations.definitions import Audience, validate_definition
from services.surveys.invitations.eligibility import History, Membership, Skip, audience_account, timing_skip
from services.surveys.invitations.links import LinkError, LinkSigner, new_invitation_id
from services.surveys.rendering import build_invitation_email, render_invitation, render_page
from services.surveys.responses.attribution import Directory, MappedBy, attribute, normalize_email
from services.surveys.segments import Segment, arr_tier, parse_arr_tiers, segment_of
from shared.events import SurveyType
from shared.http import ApiError

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
QUIET = timedelta(days=30)


def skip(history: History, cadence: int | None = 90, recurring: bool = True) -> Skip | None:
    return timing_skip(history, now=NOW, quiet_period=QUIET, cadence_days=cadence, recurring=recurring)


def test_quiet_period_counts_any_survey_and_ends_exactly() -> None:
    assert skip(History()) is None
    assert skip(History(last_surveyed_at=NOW - timedelta(days=29, hours=23))) is Skip.QUIET_PERIOD
    assert skip(History(last_surveyed_at=NOW - QUIET)) is None  # exactly 30 days ago: allowed again
    assert skip(History(last_surveyed_at=NOW - timedelta(days=1)), recurring=False) is Skip.QUIET_PERIOD
    # With no quiet period only cadence and unsubscribes apply.
    assert (
        timing_skip(
            History(last_surveyed_at=NOW),
            now=NOW,
            quiet_period=timedelta(0),
            cadence_days=None,
            recurring=False,
        )
        is None
    )


def test_cadence_and_one_off_surveys() -> None:
    sixty_days_ago = NOW - timedelta(days=60)
    assert (
        skip(History(last_surveyed_at=sixty_days_ago, last_invited_by_definition_at=sixty_days_ago))
        is Skip.CADENCE
    )
    ninety = NOW - timedelta(days=90)
    assert skip(History(last_surveyed_at=ninety, last_invited_by_definition_at=ninety)) is None
    assert (
        skip(History(last_invited_by_definition_at=NOW - timedelta(days=400)), cadence=None)
        is Skip.ALREADY_INVITED
    )
    # Ticket surveys are once per ticket (the store's key), not once per person.
    assert skip(History(last_invited_by_definition_at=NOW - timedelta(days=40)), recurring=False) is None


def test_unsubscribed_is_never_invited_whatever_else_holds() -> None:
    assert skip(History(unsubscribed=True)) is Skip.UNSUBSCRIBED
    assert skip(History(unsubscribed=True), recurring=False) is Skip.UNSUBSCRIBED


def seg(plan: str | None = "pro", stage: str | None = "adoption", tier: str | None = "mid_touch") -> Segment:
    return Segment(plan, stage, tier)


def test_audience_picks_the_most_recent_matching_account() -> None:
    old, new = NOW - timedelta(days=300), NOW - timedelta(days=3)
    memberships = [Membership("acme", seg(), old), Membership("globex", seg(plan="free"), new)]
    assert audience_account(Audience(), None, memberships) == "globex"
    assert audience_account(Audience(plans=["PRO"]), None, memberships) == "acme"
    assert audience_account(Audience(account_ids=["initech"]), None, memberships) is Skip.AUDIENCE
    assert audience_account(Audience(lifecycle_stages=["renewal"]), None, memberships) is Skip.AUDIENCE
    assert audience_account(Audience(arr_tiers=["mid_touch"], plans=["free"]), None, memberships) == "globex"
    assert audience_account(Audience(roles=["Admin", "owner"]), "admin", memberships) == "globex"
    assert audience_account(Audience(roles=["admin"]), "Engineer", memberships) is Skip.ROLE
    assert audience_account(Audience(roles=["admin"]), None, memberships) is Skip.ROLE
    # Unknown segment values never match a filter on that dimension.
    unknown = [Membership("acme", seg(None, None, None), old)]
    assert audience_account(Audience(plans=["pro"]), None, unknown) is Skip.AUDIENCE
    # No account known: allowed only when the audience does not filter accounts.
    assert audience_account(Audience(roles=["admin"]), "admin", []) is None
    assert audience_account(Audience(plans=["pro"]), None, []) is Skip.AUDIENCE


def test_arr_tiers_and_segments_from_traits() -> None:
    tiers = parse_arr_tiers("high_touch:100000, low_touch:0,mid_touch:25000")
    assert [t.name for t in tiers] == ["low_touch", "mid_touch", "high_touch"]
    assert [arr_tier(v, tiers) for v in (None, 0, 24_999.99, 25_000, 10**6)] == [
        None,
        "low_touch",
        "low_touch",
        "mid_touch",
        "high_touch",
    ]
    assert arr_tier(5, parse_arr_tiers("paid:10")) is None  # below the lowest bound
    assert segment_of({"plan": " Pro ", "mrr": 3000, "lifecycle_stage": "Renewal"}, tiers) == Segment(
        "Pro", "renewal", "mid_touch"
    )
    assert segment_of({"arr": 120_000}, tiers).arr_tier == "high_touch"
    assert segment_of({"mrr": "lots", "lifecycle_stage": "sleeping"}, tiers) == Segment(None, None, None)
    for bad, names in [
        ("x", "name:lower_bound"),
        ("a:1,a:2", "unique"),
        ("a:ten", "'ten'"),
        ("", "one tier"),
    ]:
        with pytest.raises(ValueError, match=names):
            parse_arr_tiers(bad)


def test_attribution_is_explicit_or_unambiguous_never_guessed() -> None:
    directory = Directory(
        accounts_by_user={
            "u1": frozenset({"acme"}),
            "u2": frozenset({"acme", "globex"}),
            "u3": frozenset({"globex"}),
        },
        users_by_email={"jane@acme.example": frozenset({"u1"}), "shared@x.example": frozenset({"u1", "u3"})},
    )

    def who(**kw: Any) -> tuple[str | None, MappedBy | None]:
        found = attribute(
            explicit_account=kw.get("account"),
            user_id=kw.get("user"),
            email=kw.get("email"),
            directory=directory,
        )
        return found.account_id, found.mapped_by

    assert who(account="initech", user="u1") == ("initech", MappedBy.EXPLICIT)
    assert who(user="u1") == ("acme", MappedBy.USER)
    assert who(user="u2") == (None, None)  # two accounts: not guessing
    assert who(user="nobody", email="jane@acme.example") == ("acme", MappedBy.EMAIL)
    assert who(email="shared@x.example") == (None, None)  # the email's users span two accounts
    reason = attribute(explicit_account=None, user_id="u2", email=None, directory=directory).unmapped_reason
    assert reason is not None and "2 accounts (acme, globex)" in reason
    assert normalize_email("  Jane@Acme.Example ") == "jane@acme.example"
    assert [normalize_email(v) for v in ("jane", "@acme.example", "a b@c.de", "x@localhost", 7)] == [None] * 5


def test_links_are_signed_expiring_and_purpose_bound() -> None:
    signer = LinkSigner("secret")
    invitation_id = new_invitation_id()
    token = signer.respond_token(invitation_id, NOW + timedelta(days=14))
    assert signer.read_respond_token(token, now=NOW) == invitation_id
    with pytest.raises(LinkError) as caught:
        signer.read_respond_token(token, now=NOW + timedelta(days=14))
    assert caught.value.kind == "expired"
    assert signer.read_respond_token(token, now=None) == invitation_id  # the thank-you page
    ident, expiry, signature = token.split(".")
    forged = [
        f"{ident}.{int(expiry) + 86400}.{signature}",  # extended expiry
        f"{new_invitation_id()}.{expiry}.{signature}",  # someone else's invitation
        LinkSigner("other").respond_token(invitation_id, NOW + timedelta(days=1)),
        signer.unsubscribe_token(invitation_id),
        "garbage",
        f"{ident}..{signature}",
    ]
    for bad in forged:
        with pytest.raises(LinkError) as caught:
            signer.read_respond_token(bad, now=NOW)
        assert caught.value.kind == "invalid", bad
    unsubscribe = signer.unsubscribe_token(invitation_id)
    assert signer.read_unsubscribe_token(unsubscribe) == invitation_id
    with pytest.raises(LinkError):
        signer.read_unsubscribe_token(token)  # a response link cannot unsubscribe anyone


def definition(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Relationship NPS",
        "survey_type": "nps",
        "question": "How likely are you to recommend Acme to a friend or colleague?",
        "comment_question": "What is the main reason for your score?",
        "audience": {"plans": ["pro"], "roles": ["admin"]},
        "cadence_days": 90,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def definition_errors(body: Any) -> list[dict[str, str]]:
    with pytest.raises(ApiError) as caught:
        validate_definition(body, ["low_touch", "high_touch"])
    assert caught.value.status == 400
    return caught.value.errors


def test_definitions_validate_with_field_errors() -> None:
    parsed = validate_definition(definition(), ["low_touch"])
    assert (parsed.trigger.value, parsed.cadence_days, parsed.audience.plans) == ("relationship", 90, ["pro"])
    ticket = validate_definition(
        definition(survey_type="csat", trigger="ticket_solved", cadence_days=..., audience=...), []
    )
    assert ticket.audience == Audience()
    assert definition_errors(definition(survey_type="csat", trigger="ticket_solved")) == [
        {
            "field": "cadence_days",
            "message": "a ticket_solved survey is sent once per solved ticket; leave cadence_days out",
        }
    ]
    assert [e["field"] for e in definition_errors(definition(trigger="ticket_solved", cadence_days=...))] == [
        "survey_type"
    ]
    errors = definition_errors(
        definition(
            name=" ",
            survey_type="xps",
            question=...,
            cadence_days=0,
            audience={"arr_tiers": ["gold"], "lifecycle_stages": ["asleep"], "segments": ["x"]},
            colour="red",
        )
    )
    assert {e["field"] for e in errors} == {
        "name",
        "survey_type",
        "question",
        "cadence_days",
        "audience.arr_tiers",
        "audience.lifecycle_stages[0]",
        "audience.segments",
        "colour",
    }
    tier_error = next(e for e in errors if e["field"] == "audience.arr_tiers")
    assert tier_error["message"] == "unknown ARR tier gold; configured tiers: low_touch, high_touch"
    assert definition_errors([definition()]) == [{"field": "body", "message": "must be a JSON object"}]


def test_insight_figures_and_month_on_month_change() -> None:
    assert figures(SurveyType.NPS, {}) == {
        "responses": 0,
        "nps": None,
        "promoters": 0,
        "passives": 0,
        "detractors": 0,
    }
    assert figures(SurveyType.CSAT, {5: 1, 4: 1, 1: 1}) == {"responses": 3, "csat": 66.67, "satisfied": 2}
    assert figures(SurveyType.CES, {7: 1, 2: 1}) == {
        "responses": 2,
        "ces_mean": 4.5,
        "easy_share": 50.0,
        "easy": 1,
    }
    changes = month_changes(SurveyType.NPS, {"2026-09": {10: 1}, "2026-10": {}, "2026-11": {0: 1, 10: 3}})
    assert changes["2026-09"].change is None
    assert (changes["2026-10"].change, changes["2026-10"].previous_key) == (None, None)  # no data
    assert (changes["2026-11"].change, changes["2026-11"].previous_key) == (-50.0, "2026-09")
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def test_the_page_and_email_escape_text_and_label_every_control() -> None:
    html = render_page(
        survey_type=SurveyType.NPS,
        question="<b>Recommend</b> us?",
        comment_question="Why & how?",
        action="/s/tok",
        unsubscribe_url="/s/unsubscribe/u",
        selected=9,
        comment="</textarea><script>x</script>",
        error="Choose a score",
    )
    assert "<b>Recommend</b>" not in html and "&lt;b&gt;Recommend&lt;/b&gt;" in html
    assert "<script>" not in html
    assert '<html lang="en">' in html
    assert html.count('type="radio"') == 11 and html.count('<label for="score-') == 11
    assert re.search(r'id="score-9" value="9"\s+checked', html)
    assert not re.search(r'id="score-8" value="8"\s+checked', html)
    assert '<label for="comment">Why &amp; how?' in html
    assert 'role="alert"' in html and 'aria-describedby="scale-hint error"' in html
    content = render_invitation(
        survey_type=SurveyType.CSAT,
        question="How did we do with your request?",
        name="Jane",
        account_name="Acme <Corp>",
        respond_url="https://s/s/tok",
        unsubscribe_url="https://s/s/unsubscribe/u",
        expires_at=NOW,
    )
    assert "Acme &lt;Corp&gt;" in content.html and "Acme <Corp>" in content.text
    assert [f"https://s/s/tok?score={n}" in content.html for n in range(1, 6)] == [True] * 5
    assert "https://s/s/unsubscribe/u" in content.text
    message = build_invitation_email(
        content,
        sender="Acme <surveys@acme.example>",
        recipient="jane@x.example",
        invitation_id="inv_abc",
        unsubscribe_url="https://s/s/unsubscribe/u",
        date=NOW,
    )
    assert message["List-Unsubscribe"] == "<https://s/s/unsubscribe/u>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"] == "<churnwatch.survey-inv_abc@acme.example>"
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
