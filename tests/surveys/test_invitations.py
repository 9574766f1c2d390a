"""Relationship surveys end to end on real parts: contacts from Kafka traits, the scheduler,
an email at a real SMTP server, the response page over HTTP, the stored response, Kafka.
Time is the test's clock: nothing sleeps to let a period pass."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from services.surveys.invitations.scheduler import Scheduler
from services.surveys.segments import parse_arr_tiers
from services.surveys.store.campaigns import survey_invitations
from services.surveys.store.responses import survey_responses
from shared.events import Envelope
from shared.topics import Topics
from tests.support.infra import API_AUTH
from tests.support.kafka import read_topic
from tests.surveys.conftest import Surveys
from tests.surveys.support import ReceivedEmail, contacts_known, group, identify, publish, wait_until

LINK = re.compile(r"http://service(/s/[A-Za-z0-9_.-]+)")
UNSUBSCRIBE = re.compile(r"http://service(/s/unsubscribe/[A-Za-z0-9_.-]+)")


async def add_people(surveys: Surveys) -> None:
    await publish(
        surveys.settings,
        identify("u-jane", email="Jane@Acme.example", name="Jane Doe", role="Admin"),
        group("u-jane", "acme", name="Acme Corp", plan="pro", mrr=3000, lifecycle_stage="adoption"),
        identify("u-bob", email="bob@acme.example", name="Bob", title="Engineer"),
        group("u-bob", "acme"),
    )

    async def known() -> bool:
        return await contacts_known(surveys.engine, "u-jane", "u-bob")
    await wait_until(known, 20, "contacts from the traits topic")


async def nps_survey(surveys: Surveys, **changes: Any) -> str:
    body: dict[str, Any] = {
        "name": "Relationship NPS", "survey_type": "nps",
        "question": "How likely are you to recommend Acme to a friend or colleague?",
        "comment_question": "What is the main reason for your score?",
        "audience": {"roles": ["admin"], "plans": ["pro"]}, "cadence_days": 90}
    body.update(changes)
    answer = await surveys.post_admin("/v1/admin/surveys", body)
    assert answer.status_code == 201, answer.text
    survey_id: str = answer.json()["id"]
    return survey_id


async def responses(surveys: Surveys) -> list[dict[str, Any]]:
    async with surveys.engine.connect() as conn:
        rows = await conn.execute(select(survey_responses).order_by(survey_responses.c.response_id))
        return [dict(row._mapping) for row in rows]


async def invitations(surveys: Surveys) -> list[dict[str, Any]]:
    async with surveys.engine.connect() as conn:
        rows = await conn.execute(select(survey_invitations).order_by(survey_invitations.c.created_at))
        return [dict(row._mapping) for row in rows]


async def published(surveys: Surveys) -> list[Envelope]:
    return await read_topic(surveys.settings, Topics.from_settings(surveys.settings).survey_responses)


def link_in(mail: ReceivedEmail, pattern: re.Pattern[str] = LINK) -> str:
    found = pattern.search(mail.part("text/plain"))
    assert found is not None, mail.part("text/plain")
    return found.group(1)


async def test_invitation_email_page_response_and_kafka(surveys: Surveys) -> None:
    await add_people(surveys)
    survey_id = await nps_survey(surveys)

    report = await surveys.scheduler.run_once()
    assert len(report.created) == 1
    assert report.skipped == {"role": 1}  # Bob is an engineer; the audience is admins
    assert await surveys.sender.run_once() == 1

    [mail] = surveys.smtp.received
    assert mail.rcpt_tos == ["jane@acme.example"]
    assert mail.message["Subject"] == "How likely are you to recommend Acme to a friend or colleague?"
    assert mail.message["From"] == "Acme Surveys <surveys@acme.example>"
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert [p.get_content_type() for p in mail.message.walk()] == [
        "multipart/alternative", "text/plain", "text/html"]
    text, html = mail.part("text/plain"), mail.part("text/html")
    assert text.startswith("Hi Jane Doe,") and "contact at Acme Corp" in text
    path = link_in(mail)
    assert f"http://service{path}?score=10" in html and f"http://service{path}?score=0" in html
    assert UNSUBSCRIBE.search(text) and UNSUBSCRIBE.search(html)

    # The page: a GET records nothing (mail scanners follow links), it only preselects.
    page = await surveys.client.get(path, params={"score": "9"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "How likely are you to recommend Acme" in page.text
    assert re.search(r'id="score-9" value="9"\s+checked', page.text)
    assert await responses(surveys) == []

    surveys.clock.advance(minutes=5)
    posted = await surveys.client.post(path, data={"score": "3", "comment": "Competitor X is cheaper"})
    assert posted.status_code == 303, posted.text
    assert posted.headers["location"] == f"{path}/thanks"
    thanks = await surveys.client.get(posted.headers["location"])
    assert thanks.status_code == 200 and "Thank you!" in thanks.text

    [row] = await responses(surveys)
    [invitation] = await invitations(surveys)
    assert row["response_id"] == f"invitation:{invitation['id']}"
    assert (row["account_id"], row["user_id"], row["respondent_email"], row["survey_type"], row["score"],
            row["comment"], row["channel"], row["campaign_id"], row["mapped_by"]) == (
        "acme", "u-jane", "jane@acme.example", "nps", 3, "Competitor X is cheaper", "email_invitation",
        survey_id, "invitation")
    assert row["submitted_at"] == surveys.clock.now
    assert (invitation["status"], invitation["used_at"], invitation["response_id"]) == (
        "sent", surveys.clock.now, row["response_id"])

    [event] = await published(surveys)
    assert (event.event_id, event.account_id, event.user_id, event.source) == (
        f"survey-response:{row['response_id']}:1", "acme", "u-jane", "surveys")
    assert event.payload == {"response_id": row["response_id"], "survey_type": "nps", "score": 3,
                             "comment": "Competitor X is cheaper", "revision": 1,
                             "channel": "email_invitation", "campaign_id": survey_id, "ticket_id": None}

    # Single use: a second answer through the same link is refused and changes nothing.
    again = await surveys.client.post(path, data={"score": "10"})
    assert again.status_code == 409 and "already answered" in again.text
    assert "already answered" in (await surveys.client.get(path)).text
    assert [r["score"] for r in await responses(surveys)] == [3]
    assert len(await published(surveys)) == 1

    # The same person is not asked again within the cadence, however often the scheduler runs.
    assert (await surveys.scheduler.run_once()).created == []
    surveys.clock.advance(days=60)
    assert (await surveys.scheduler.run_once()).skipped["cadence"] == 1
    surveys.clock.advance(days=31)
    assert len((await surveys.scheduler.run_once()).created) == 1

    rate = (await surveys.client.get("/v1/insights/campaigns", headers=API_AUTH)).json()["campaigns"]
    assert [(c["campaign_id"], c["invited"], c["responded"], c["pending"], c["response_rate"])
            for c in rate] == [(survey_id, 1, 1, 1, 100.0)]
    nps = (await surveys.client.get("/v1/insights/nps", params={"group_by": "account"},
                                    headers=API_AUTH)).json()
    assert nps["groups"][0]["key"] == "acme" and nps["overall"]["nps"] == -100.0


async def test_quiet_period_spans_surveys_and_unsubscribe_is_final(surveys: Surveys) -> None:
    await add_people(surveys)
    first = await nps_survey(surveys, audience={}, cadence_days=90)
    surveys.clock.advance(minutes=1)  # surveys are considered oldest first
    second = await nps_survey(surveys, name="Onboarding CSAT", survey_type="csat",
                              question="How satisfied are you with Acme so far?", audience={},
                              cadence_days=None)
    report = await surveys.scheduler.run_once()
    assert len(report.created) == 2  # Jane and Bob, by the first survey only
    assert report.skipped["quiet_period"] == 2  # the second survey waits for the quiet period
    assert {(i["definition_id"], i["email"]) for i in await invitations(surveys)} == {
        (first, "jane@acme.example"), (first, "bob@acme.example")}
    assert await surveys.sender.run_once() == 2

    surveys.clock.advance(days=29)
    assert (await surveys.scheduler.run_once()).created == []
    surveys.clock.advance(days=1)  # 30 days after: the second survey may go out now
    assert {(i["definition_id"], i["email"]) for i in await invitations(surveys)
            if i["created_at"] == surveys.clock.now} == set()
    assert len((await surveys.scheduler.run_once()).created) == 2
    assert {i["definition_id"] for i in await invitations(surveys)
            if i["created_at"] == surveys.clock.now} == {second}
    assert await surveys.sender.run_once() == 2
    # The one-off second survey never comes back.
    surveys.clock.advance(days=45)
    assert (await surveys.scheduler.run_once()).skipped["already_invited"] == 2

    # Jane unsubscribes from the link in her email (a confirmation page first, then POST).
    jane_mail = next(m for m in surveys.smtp.received if m.rcpt_tos == ["jane@acme.example"])
    unsubscribe_path = link_in(jane_mail, UNSUBSCRIBE)
    confirm = await surveys.client.get(unsubscribe_path)
    assert confirm.status_code == 200 and 'method="post"' in confirm.text
    assert (await surveys.client.get("/v1/admin/contacts/u-jane",
                                     headers={"Authorization": "Bearer test-admin-token"})
            ).json()["unsubscribed"] is False
    # The RFC 8058 one-click POST a mail client sends from List-Unsubscribe.
    done = await surveys.client.post(unsubscribe_path, content=b"List-Unsubscribe=One-Click",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert done.status_code == 200 and "will not receive surveys" in done.text

    surveys.clock.advance(days=400)
    report = await surveys.scheduler.run_once()
    assert report.skipped["unsubscribed"] == 2  # both surveys, every time
    assert {i["email"] for i in await invitations(surveys) if i["created_at"] == surveys.clock.now} == {
        "bob@acme.example"}
    contact = (await surveys.get_admin("/v1/admin/contacts/u-jane")).json()
    assert contact["unsubscribed"] is True and contact["account_ids"] == ["acme"]


async def test_queued_invitation_to_someone_who_unsubscribed_is_cancelled(surveys: Surveys) -> None:
    await add_people(surveys)
    await nps_survey(surveys)
    [invitation_id] = (await surveys.scheduler.run_once()).created
    answer = await surveys.post_admin("/v1/admin/unsubscribes", {"email": "JANE@acme.example"})
    assert answer.json() == {"email": "jane@acme.example", "unsubscribed": True, "already": False}
    assert await surveys.sender.run_once() == 0  # cancelled before the sender saw it
    assert surveys.smtp.received == []
    [invitation] = await invitations(surveys)
    assert (invitation["id"], invitation["status"]) == (invitation_id, "cancelled")


async def test_links_expire_refuse_tampering_and_validate_the_answer(surveys: Surveys) -> None:
    await add_people(surveys)
    await nps_survey(surveys)
    await surveys.scheduler.run_once()
    await surveys.sender.run_once()
    path = link_in(surveys.smtp.received[0])

    tampered = path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB")
    assert (await surveys.client.get(tampered)).status_code == 404
    assert (await surveys.client.post(tampered, data={"score": "9"})).status_code == 404

    for form in ({}, {"score": "eleven"}, {"score": "11"}, {"score": "-1"}):
        refused = await surveys.client.post(path, data=form)
        assert refused.status_code == 400
        assert "Choose a score from 0 to 10" in refused.text and 'role="alert"' in refused.text
    long = await surveys.client.post(path, data={"score": "9", "comment": "x" * 5001})
    assert long.status_code == 400 and 'checked' in long.text  # the score chosen is kept
    assert await responses(surveys) == []

    surveys.clock.advance(days=14)  # CHURNWATCH_SURVEY_LINK_TTL_DAYS
    assert (await surveys.client.get(path)).status_code == 410
    closed = await surveys.client.post(path, data={"score": "9"})
    assert closed.status_code == 410 and "closed" in closed.text
    assert await responses(surveys) == []
    assert await published(surveys) == []


async def test_smtp_refusals_retry_or_fail(surveys: Surveys) -> None:
    await add_people(surveys)
    await nps_survey(surveys, audience={})
    assert len((await surveys.scheduler.run_once()).created) == 2
    surveys.smtp.reject_next(451)  # temporary: tried again later
    surveys.smtp.reject_next(550)  # permanent: failed, not retried
    assert await surveys.sender.run_once() == 2
    assert sorted(i["status"] for i in await invitations(surveys)) == ["failed", "pending"]
    assert await surveys.sender.run_once() == 0  # the retry is not due yet
    surveys.clock.advance(minutes=1)
    assert await surveys.sender.run_once() == 1
    assert sorted(i["status"] for i in await invitations(surveys)) == ["failed", "sent"]
    assert len(surveys.smtp.received) == 1
    metrics = (await surveys.client.get("/metrics")).text
    assert 'churnwatch_surveys_invitation_sends_total{outcome="failed",reason="smtp_550"}' in metrics


async def test_the_scheduler_pages_through_contacts_in_a_stable_order(surveys: Surveys) -> None:
    people = [f"u-{n}" for n in range(7)]
    await publish(surveys.settings, *[
        envelope for n, user in enumerate(people) for envelope in (
            identify(user, email=f"p{n}@acme.example", role="admin"),
            group(user, "acme", plan="pro"))],
        # Two contacts with one email: one invitation (the quiet period holds across pages).
        identify("u-twin", email="p3@acme.example", role="admin"), group("u-twin", "acme"),
        # Not reachable: no account.
        identify("u-lonely", email="lonely@acme.example", role="admin"))
    await surveys.post_admin("/v1/admin/unsubscribes", {"email": "p5@acme.example"})

    async def known() -> bool:
        return await contacts_known(surveys.engine, *people, "u-twin")
    await wait_until(known, 20, "contacts from the traits topic")
    await nps_survey(surveys)
    paged = Scheduler(surveys.settings.model_copy(update={"survey_max_invitations_per_run": 4}),
                      surveys.engine, surveys.clock, parse_arr_tiers(surveys.settings.survey_arr_tiers),
                      page_size=2)
    # The budget ends the first pass in the second page, in (email, user id) order.
    first = await paged.run_once()
    assert len(first.created) == 4
    assert [i["email"] for i in await invitations(surveys)] == [
        "p0@acme.example", "p1@acme.example", "p2@acme.example", "p3@acme.example"]
    second = await paged.run_once()
    assert len(second.created) == 2
    assert [i["email"] for i in await invitations(surveys)][4:] == ["p4@acme.example", "p6@acme.example"]
    assert second.skipped == {"quiet_period": 5, "unsubscribed": 1}  # p0-p3 and u-twin; p5
    assert sorted(i["user_id"] for i in await invitations(surveys)
                  if i["email"] == "p3@acme.example") == ["u-3"]
    # Everyone reached: a third pass invites no one, and a one-row page changes nothing.
    assert (await Scheduler(surveys.settings, surveys.engine, surveys.clock,
                            parse_arr_tiers(surveys.settings.survey_arr_tiers), page_size=1)
            .run_once()).created == []
