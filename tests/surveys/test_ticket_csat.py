"""The post-ticket CSAT: a solved ticket on Kafka invites its requester once, within the rules."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.surveys.contacts import Contact
from services.surveys.invitations.ticket_csat import Requester, Unmatched, choose_requester
from services.surveys.store import contacts as contact_store
from services.surveys.store.campaigns import survey_invitations
from shared.consumer import consumer_offsets
from shared.events import Envelope
from shared.topics import Topics
from tests.support.kafka import read_topic
from tests.surveys.conftest import Surveys
from tests.surveys.support import ADMIN, contacts_known, group, identify, publish, ticket, wait_until

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


def zendesk_ticket(ticket_id: str, requester_id: int | None, *, account_id: str | None,
                   occurred_at: datetime, status: str = "solved") -> Envelope:
    """What ingest's Zendesk normaliser publishes: the requester by Zendesk user id, no email."""
    envelope = ticket(ticket_id, status, account_id=account_id, occurred_at=occurred_at)
    payload = {**envelope.payload, "requester_id": None if requester_id is None else str(requester_id),
               "solved_at": occurred_at.isoformat() if status == "solved" else None}
    return envelope.model_copy(update={"source": "zendesk", "payload": payload,
                                       "event_id": f"zendesk:{ticket_id}-{status}"})


def test_the_requester_is_chosen_explicitly() -> None:
    jane = Contact("u-jane", "jane@acme.example", "Jane", None, "900002")
    bob = Contact("u-bob", "bob@acme.example", "Bob", None, "900002")
    mute = Contact("u-mute", None, None, None, "900003")
    # The ticket's user id wins; then the requester's email (its contact, else the address).
    assert choose_requester(jane, "other@acme.example", [], []) == Requester(jane, "jane@acme.example")
    assert choose_requester(None, "Bob@Acme.example", [bob], [jane]) == Requester(bob, "bob@acme.example")
    assert choose_requester(None, "ann@globex.example", [], [jane]) == Requester(None, "ann@globex.example")
    # Only without an email does the Zendesk id count, and only when one contact claims it.
    assert choose_requester(None, None, [], [jane]) == Requester(jane, "jane@acme.example")
    assert choose_requester(None, None, [], [jane, bob]) is Unmatched.AMBIGUOUS_REQUESTER
    assert choose_requester(None, None, [], []) is Unmatched.UNKNOWN_REQUESTER
    assert choose_requester(None, None, [], [mute]) is Unmatched.NO_EMAIL


async def test_a_zendesk_ticket_finds_its_requester_by_zendesk_user_id(surveys: Surveys) -> None:
    now = surveys.clock.now
    await publish(surveys.settings,
                  identify("u-jane", email="jane@acme.example", zendesk_user_id=900002),
                  group("u-jane", "acme", name="Acme Corp"),
                  identify("u-bob", email="bob@acme.example", zendesk_user_id="900005"),
                  identify("u-rob", email="rob@acme.example", zendesk_user_id="900005"),
                  group("u-bob", "acme"), group("u-rob", "acme"))

    async def known() -> bool:
        return await contacts_known(surveys.engine, "u-jane", "u-bob", "u-rob")
    await wait_until(known, 20, "the contacts")
    created = await surveys.post_admin("/v1/admin/surveys", {
        "name": "Support CSAT", "survey_type": "csat", "trigger": "ticket_solved",
        "question": "How satisfied are you with the help you received?"})
    assert created.status_code == 201, created.text

    await publish(surveys.settings,
                  # Jane's ticket: no email in the event, her Zendesk id is her contact's.
                  zendesk_ticket("Z-1", 900002, account_id=None, occurred_at=now),
                  # Nobody is Zendesk user 900009 yet: kept, counted, no mail.
                  zendesk_ticket("Z-2", 900009, account_id="acme", occurred_at=now),
                  # Two contacts claim 900005: ambiguous, kept rather than guessed.
                  zendesk_ticket("Z-3", 900005, account_id="acme", occurred_at=now),
                  # The same id from another tool is not a Zendesk id: unknown, kept.
                  zendesk_ticket("X-4", 900002, account_id="acme", occurred_at=now).model_copy(
                      update={"source": "generic", "event_id": "generic:X-4"}))
    await processed(surveys, 4)
    assert [(i["ticket_id"], i["email"], i["user_id"], i["account_id"])
            for i in await invitations(surveys)] == [("Z-1", "jane@acme.example", "u-jane", "acme")]
    kept = await surveys.get_admin("/v1/admin/tickets/unmatched")
    assert kept.status_code == 200, kept.text
    assert kept.json()["unmatched"] == 3
    assert sorted((t["source"], t["ticket_id"], t["reason"], t["requester_id"])
                  for t in kept.json()["tickets"]) == [
        ("generic", "X-4", "unknown_requester", None),
        ("zendesk", "Z-2", "unknown_requester", "900009"),
        ("zendesk", "Z-3", "ambiguous_requester", "900005")]

    # A redelivery of a kept ticket is still one kept ticket, counted once.
    await publish(surveys.settings, zendesk_ticket("Z-2", 900009, account_id="acme", occurred_at=now)
                  .model_copy(update={"event_id": "zendesk:Z-2-again"}))
    await processed(surveys, 5)
    metrics = (await surveys.client.get("/metrics")).text
    assert ('churnwatch_surveys_unmatched_tickets_total{reason="unknown_requester",source="zendesk"} 1.0'
            in metrics), metrics
    assert ('churnwatch_surveys_unmatched_tickets_total{reason="ambiguous_requester",source="zendesk"} 1.0'
            in metrics)

    # Ann's identify names her Zendesk id: the kept ticket is hers, and still recent: invited.
    surveys.clock.advance(hours=2)
    await publish(surveys.settings, identify("u-ann", email="ann@acme.example", zendesk_user_id="900009"))

    async def ann_invited() -> bool:
        return any(i["ticket_id"] == "Z-2" for i in await invitations(surveys))
    await wait_until(ann_invited, 20, "the kept ticket's invitation")
    z2 = next(i for i in await invitations(surveys) if i["ticket_id"] == "Z-2")
    assert (z2["email"], z2["user_id"], z2["account_id"]) == ("ann@acme.example", "u-ann", "acme")
    # An explicit admin mapping resolves the conflict: Rob is no longer 900005, Bob is.
    put = await surveys.client.put("/v1/admin/contacts/u-rob", json={
        "email": "rob@acme.example", "zendesk_user_id": "900006", "account_ids": ["acme"]},
        headers=ADMIN)
    assert put.status_code == 200, put.text
    put = await surveys.client.put("/v1/admin/contacts/u-bob", json={
        "email": "bob@acme.example", "zendesk_user_id": "900005", "account_ids": ["acme"]},
        headers=ADMIN)
    assert put.status_code == 200, put.text
    assert (put.json()["zendesk_user_id"], put.json()["invited_for_tickets"]) == ("900005", 1)
    assert sorted((i["ticket_id"], i["email"]) for i in await invitations(surveys)) == [
        ("Z-1", "jane@acme.example"), ("Z-2", "ann@acme.example"), ("Z-3", "bob@acme.example")]
    kept = (await surveys.get_admin("/v1/admin/tickets/unmatched")).json()
    assert [t["ticket_id"] for t in kept["tickets"]] == ["X-4"]
    metrics = (await surveys.client.get("/metrics")).text
    assert 'churnwatch_surveys_unmatched_tickets_matched_total{source="zendesk"} 2.0' in metrics

    # Too late: a kept ticket is not invited once its solve is older than the maximum age.
    await publish(surveys.settings, zendesk_ticket("Z-7", 900077, account_id="acme", occurred_at=now))
    await processed(surveys, 6)
    surveys.clock.advance(days=5)
    await publish(surveys.settings, identify("u-late", email="late@acme.example", zendesk_user_id=900077))

    async def late_known() -> bool:
        async with surveys.engine.connect() as conn:
            return await contact_store.load_contact(conn, "u-late") is not None
    await wait_until(late_known, 20, "the late contact")
    assert "Z-7" not in {i["ticket_id"] for i in await invitations(surveys)}
