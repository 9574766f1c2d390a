"""The post-ticket CSAT: a solved ticket on Kafka invites its requester once, within the rules."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from services.surveys.campaign_store import survey_invitations
from shared.consumer import consumer_offsets
from shared.topics import Topics
from tests.support.kafka import read_topic
from tests.surveys.conftest import Surveys
from tests.surveys.support import contacts_known, group, identify, publish, ticket, wait_until

LINK = re.compile(r"http://service(/s/[A-Za-z0-9_.-]+)")


async def invitations(surveys: Surveys) -> list[dict[str, Any]]:
    async with surveys.engine.connect() as conn:
        rows = await conn.execute(select(survey_invitations).order_by(survey_invitations.c.created_at,
                                                                      survey_invitations.c.id))
        return [dict(row._mapping) for row in rows]


async def processed(surveys: Surveys, count: int) -> None:
    """Wait until the consumer has handled `count` ticket events (its durable offsets say so)."""
    topic = Topics.from_settings(surveys.settings).tickets

    async def done() -> bool:
        async with surveys.engine.connect() as conn:
            rows = await conn.execute(select(consumer_offsets.c.next_offset).where(
                consumer_offsets.c.topic == topic))
            return sum(r[0] for r in rows) >= count
    await wait_until(done, 20, f"{count} ticket events consumed")


async def test_a_solved_ticket_invites_its_requester_once(surveys: Surveys) -> None:
    now = surveys.clock.now
    await publish(surveys.settings,
                  identify("u-jane", email="jane@acme.example", name="Jane"),
                  group("u-jane", "acme", name="Acme Corp", plan="pro"))

    async def known() -> bool:
        return await contacts_known(surveys.engine, "u-jane")
    await wait_until(known, 20, "Jane's contact")
    created = await surveys.post_admin("/v1/admin/surveys", {
        "name": "Support CSAT", "survey_type": "csat", "trigger": "ticket_solved",
        "question": "How satisfied are you with the help you received?",
        "comment_question": "Anything we could have done better?"})
    assert created.status_code == 201, created.text
    survey_id = created.json()["id"]

    solved_at = now - timedelta(hours=1)
    await publish(surveys.settings,
                  ticket("T-1", "open", account_id="acme", user_id="u-jane", occurred_at=solved_at),
                  ticket("T-1", "solved", account_id="acme", user_id="u-jane", occurred_at=solved_at),
                  # Closed after solved: the same ticket, no second survey.
                  ticket("T-1", "closed", account_id="acme", user_id="u-jane", occurred_at=now))
    await processed(surveys, 3)
    [invitation] = await invitations(surveys)
    assert (invitation["definition_id"], invitation["email"], invitation["user_id"], invitation["account_id"],
            invitation["ticket_id"]) == (survey_id, "jane@acme.example", "u-jane", "acme", "T-1")

    assert await surveys.sender.run_once() == 1
    [mail] = surveys.smtp.received
    assert mail.message["Subject"] == "How satisfied are you with the help you received?"
    found = LINK.search(mail.part("text/plain"))
    assert found is not None
    posted = await surveys.client.post(found.group(1), data={"score": "2", "comment": "Took four days"})
    assert posted.status_code == 303
    [event] = await read_topic(surveys.settings, Topics.from_settings(surveys.settings).survey_responses)
    assert (event.account_id, event.payload["survey_type"], event.payload["score"],
            event.payload["ticket_id"], event.payload["campaign_id"], event.payload["comment"]) == (
        "acme", "csat", 2, "T-1", survey_id, "Took four days")

    # Another ticket solved the next day: the quiet period holds, nobody is mailed.
    surveys.clock.advance(days=1)
    await publish(surveys.settings, ticket("T-2", "solved", account_id="acme", user_id="u-jane",
                                           occurred_at=surveys.clock.now))
    # A ticket solved long ago (a replayed backlog) mails no one either.
    await publish(surveys.settings, ticket("T-0", "solved", account_id="acme",
                                           requester_email="old@acme.example",
                                           occurred_at=surveys.clock.now - timedelta(days=10)))
    # A requester known only by the ticket's email is asked about the ticket's account.
    await publish(surveys.settings, ticket("T-3", "solved", account_id="globex",
                                           requester_email="Ann@Globex.example",
                                           occurred_at=surveys.clock.now))
    await processed(surveys, 6)
    assert [(i["ticket_id"], i["email"], i["account_id"]) for i in await invitations(surveys)] == [
        ("T-1", "jane@acme.example", "acme"), ("T-3", "ann@globex.example", "globex")]
    metrics = (await surveys.client.get("/metrics")).text
    assert 'churnwatch_surveys_invitations_skipped_total{reason="quiet_period"}' in metrics
    assert 'churnwatch_surveys_invitations_skipped_total{reason="ticket_too_old"}' in metrics

    # A redelivered solved event (a help-desk retry with a new event id) is still one ticket.
    surveys.clock.advance(days=40)
    await publish(surveys.settings, ticket("T-3", "solved", account_id="globex",
                                           requester_email="ann@globex.example",
                                           occurred_at=surveys.clock.now).model_copy(
                                               update={"event_id": "ticket-T-3-solved-again"}))
    await processed(surveys, 7)
    assert len(await invitations(surveys)) == 2
