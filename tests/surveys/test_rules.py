"""The rules behind invitations, pure: quiet period, cadence, audience, links, definitions,
segments, attribution, insight and what the respondent sees."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from services.surveys.insight.figures import figures, month_bounds, month_changes
from services.surveys.invitations.definitions import Audience, validate_definition
from services.surveys.invitations.eligibility import History, Membership, Skip, audience_account, timing_skip
from services.surveys.invitations.links import LinkSigner, new_invitation_id
from services.surveys.rendering import build_invitation_email, render_invitation, render_page
from services.surveys.responses.attribution import Directory, MappedBy, attribute, normalize_email
from services.surveys.segments import Segment, arr_tier, parse_arr_tiers, segment_of
from shared.events import SurveyType
from shared.http import ApiError
from shared.signed_links import LinkError, LinkProblem

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
QUIET = timedelta(days=30)
SECRET = "a-survey-link-secret-long-enough-for-hs256"


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
    signer = LinkSigner(SECRET)
    invitation_id = new_invitation_id()
    token = signer.respond_token(invitation_id, NOW + timedelta(days=14), NOW)
    assert signer.read_respond_token(token, now=NOW) == invitation_id
    with pytest.raises(LinkError) as caught:
        signer.read_respond_token(token, now=NOW + timedelta(days=14))
    assert caught.value.problem is LinkProblem.EXPIRED
    assert signer.read_respond_token(token, now=None) == invitation_id  # the thank-you page
    header, _, signature = token.split(".")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims == {"iss": "churnwatch-surveys", "aud": "churnwatch-surveys/respond", "sub": invitation_id,
                      "iat": int(NOW.timestamp()), "exp": int((NOW + timedelta(days=14)).timestamp())}
    forger = "not-the-secret-but-long-enough-for-hs256"
    extended = jwt.encode({**claims, "exp": claims["exp"] + 86400}, forger).split(".")[1]
    someone_else = jwt.encode({**claims, "sub": new_invitation_id()}, forger).split(".")[1]
    forged = [
        f"{header}.{extended}.{signature}",  # extended expiry
        f"{header}.{someone_else}.{signature}",  # someone else's invitation
        LinkSigner(forger).respond_token(invitation_id, NOW + timedelta(days=1), NOW),
        signer.unsubscribe_token(invitation_id, NOW),
        "garbage",
        f"{header}..{signature}",
    ]
    for bad in forged:
        with pytest.raises(LinkError) as caught:
            signer.read_respond_token(bad, now=NOW)
        assert caught.value.problem is LinkProblem.INVALID, bad
    unsubscribe = signer.unsubscribe_token(invitation_id, NOW)
    assert "exp" not in jwt.decode(unsubscribe, options={"verify_signature": False})
    assert signer.read_unsubscribe_token(unsubscribe) == invitation_id
    with pytest.raises(LinkError):
        signer.read_unsubscribe_token(token)  # a response link cannot unsubscribe anyone


def old_hmac_signature(secret: str, message: str) -> str:
    """The signature of links sent before the shared format, written from that format's spec."""
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_links_sent_in_the_old_hmac_format_keep_working() -> None:
    signer = LinkSigner(SECRET)
    invitation_id = new_invitation_id()
    expiry = int((NOW + timedelta(days=14)).timestamp())
    respond_signature = old_hmac_signature(SECRET, f"respond:{invitation_id}:{expiry}")
    old_respond = f"{invitation_id}.{expiry}.{respond_signature}"
    old_unsubscribe = f"{invitation_id}.{old_hmac_signature(SECRET, f'unsubscribe:{invitation_id}')}"

    assert signer.read_respond_token(old_respond, now=NOW) == invitation_id
    assert signer.read_respond_token(old_respond, now=None) == invitation_id
    with pytest.raises(LinkError) as caught:
        signer.read_respond_token(old_respond, now=NOW + timedelta(days=14))
    assert caught.value.problem is LinkProblem.EXPIRED
    # Unsubscribe links never expire: one from an email years old still works.
    assert signer.read_unsubscribe_token(old_unsubscribe) == invitation_id

    ident, _, signature = old_respond.split(".")
    def respond(token: str) -> str:
        return signer.read_respond_token(token, now=NOW)

    refused = {
        "response link used to unsubscribe": (signer.read_unsubscribe_token, old_respond),
        "unsubscribe link used to respond": (respond, old_unsubscribe),
        "extended expiry": (respond, f"{ident}.{expiry + 86400}.{signature}"),
        "another secret": (signer.read_unsubscribe_token,
                           f"{invitation_id}.{old_hmac_signature('other', f'unsubscribe:{invitation_id}')}"),
    }
    for why, (read, bad) in refused.items():
        with pytest.raises(LinkError) as caught:
            read(bad)
        assert caught.value.problem is LinkProblem.INVALID, why
    # Every link issued now is in the shared format, never the old one.
    assert not signer.unsubscribe_token(invitation_id, NOW).startswith("inv_")


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
