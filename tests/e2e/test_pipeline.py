"""The whole pipeline on real Kafka and PostgreSQL, driven by the official Segment client.

A product backend sends group/identify/track through `segment-analytics-python` pointed at
ingest; a detractor answers an NPS survey; the owning CSM gets exactly one Slack message
and one email naming the account, the reason and the customer's comment; the health endpoint
explains the score. Sending everything again, with the same ids, changes nothing and alerts
no one twice.

A Zendesk ticket solved (a signed `ticket.status_changed` webhook to ingest) reaches surveys
over Kafka; its requester, named only by Zendesk user id, is the contact whose identify said
`zendesk_user_id`; the CSAT invitation arrives at the SMTP sink (aiosmtpd) and its signed link
records the answer, which is published for scoring.
"""

from __future__ import annotations

import asyncio
import copy
import html
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics.client import Client

from shared.topics import Topics
from tests.ingest.test_helpdesk_translation import ZENDESK_CREATED
from tests.ingest.test_helpdesk_webhooks import zendesk_headers
from tests.support.infra import API_AUTH, Infra
from tests.support.kafka import read_topic
from tests.support.stack import Stack, running_stack

KEY = "test-write-key"
ACCOUNT = "acct-acme"
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def stack(infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(infra, tmp_path) as started:
        yield started


def send_product_events(stack: Stack) -> None:
    errors: list[Any] = []
    client = Client(write_key=KEY, host=stack.url("ingest"), sync_mode=True,
                    on_error=lambda error, items: errors.append(error), max_retries=2)
    client.group("user-1", ACCOUNT, traits={
        "name": "Acme Corp", "plan": "enterprise", "seats": 50,
        "csm_email": "jane.csm@example.com", "csm_slack_channel": "#cs-acme"},
        timestamp=NOW - timedelta(days=3), message_id="e2e-group-1")
    client.identify("user-1", traits={"email": "champion@acme.test", "role": "admin"},
                    timestamp=NOW - timedelta(days=3), message_id="e2e-identify-1")
    for day in range(3):
        client.track("user-1", "Report Built", properties={"report": "weekly"},
                     timestamp=NOW - timedelta(days=2 - day), message_id=f"e2e-track-{day}")
    client.flush()
    assert errors == []


COMMENT = "Exports keep failing and support is slow."


def post_detractor(stack: Stack) -> None:
    response = httpx.post(f"{stack.url('surveys')}/v1/responses", auth=(KEY, ""), json={
        "response_id": "nps-acme-1", "account_id": ACCOUNT, "user_id": "user-1",
        "survey_type": "nps", "score": 3,
        "comment": COMMENT,
        "submitted_at": NOW.isoformat()})
    assert response.status_code == 200, response.text


def wait_for_health(stack: Stack, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = httpx.get(f"{stack.url('scoring')}/v1/accounts/{ACCOUNT}/health", headers=API_AUTH)
        if response.status_code == 200:
            body = response.json()
            if predicate(body):
                return body
        time.sleep(0.2)
    raise AssertionError(f"health never matched; last answer {body}")


def test_segment_events_and_detractor_reach_the_csm_once(stack: Stack) -> None:
    send_product_events(stack)
    wait_for_health(stack, lambda h: h["events_applied"] >= 4)
    post_detractor(stack)

    slack = stack.sinks.wait_for("slack", 1)
    email = stack.sinks.wait_for("email", 1)
    assert len(slack) == 1, slack
    assert len(email) == 1, email
    assert "Acme Corp" in slack[0]["text"]
    assert "detractor" in slack[0]["text"].lower()
    assert slack[0]["blocks"], "Block Kit blocks beside the text fallback"
    assert email[0]["to"] == ["jane.csm@example.com"]
    assert "Acme Corp" in email[0]["subject"]
    assert "detractor" in email[0]["subject"].lower()
    assert email[0]["text"] and email[0]["html"]
    # What the customer wrote is what the CSM has to read: in Slack (fallback text and the
    # blocks) and in both parts of the email.
    assert COMMENT in slack[0]["text"], slack[0]["text"]
    assert COMMENT in json.dumps(slack[0]["blocks"]), slack[0]["blocks"]
    assert COMMENT in email[0]["text"], email[0]["text"]
    assert html.escape(COMMENT) in email[0]["html"], email[0]["html"]

    health = wait_for_health(stack, lambda h: any(
        f["measure"] == "nps" and f["value"] is not None for f in h["factors"]))
    assert 0 <= health["score"] <= 100
    assert health["band"] in {"red", "yellow", "green"}
    assert health["account_name"] == "Acme Corp"
    nps_factor = next(f for f in health["factors"] if f["measure"] == "nps")
    assert "3" in nps_factor["detail"] and "detractor" in nps_factor["detail"]

    nps = httpx.get(f"{stack.url('surveys')}/v1/accounts/{ACCOUNT}/nps", headers=API_AUTH).json()
    assert nps["nps"] == -100.0
    assert nps["responses"] == 1

    # Everything again, with the same ids: the score does not move, nobody is alerted twice.
    before = health
    send_product_events(stack)
    post_detractor(stack)
    time.sleep(3)  # give a wrong second alert every chance to arrive
    after = wait_for_health(stack, lambda h: True)
    assert after["score"] == before["score"]
    assert after["events_applied"] == before["events_applied"]
    assert len(stack.sinks.received("slack")) == 1
    assert len(stack.sinks.received("email")) == 1

    alerts = httpx.get(f"{stack.url('alerts')}/v1/accounts/{ACCOUNT}/alerts", headers=API_AUTH).json()
    assert len(alerts["alerts"]) == 1


ZENDESK_SECRET = "zd-e2e-secret"
ADMIN = {"Authorization": "Bearer e2e-admin-token"}
ZENDESK_REQUESTER = 900002
ZENDESK_ORGANIZATION = "360012345"
RESPONSE_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/s/[A-Za-z0-9_.-]+)\s")


@pytest.fixture
def csat_stack(infra: Infra, tmp_path: Path) -> Iterator[Stack]:
    with running_stack(
        infra, tmp_path, zendesk_webhook_secret=ZENDESK_SECRET, admin_token="e2e-admin-token",
        survey_link_secret="e2e-link-secret", survey_email_from="Acme Support <support@acme.test>",
        ticket_account_mappings=json.dumps({f"organization:{ZENDESK_ORGANIZATION}": ACCOUNT}),
    ) as started:
        yield started


def zendesk_solved_body(solved_at: datetime) -> bytes:
    """Zendesk's `ticket.status_changed` event as its webhook sends it: no requester email."""
    body: dict[str, Any] = copy.deepcopy(ZENDESK_CREATED)
    body.update({"type": "zen:event-type:ticket.status_changed", "id": "01JE2ESOLVED0000000000000A",
                 "time": solved_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    body["detail"].update({"status": "SOLVED", "organization_id": ZENDESK_ORGANIZATION,
                           "requester_id": str(ZENDESK_REQUESTER),
                           "created_at": (solved_at - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                           "updated_at": solved_at.strftime("%Y-%m-%dT%H:%M:%SZ")})
    body["event"] = {"current": "SOLVED", "previous": "OPEN"}
    return json.dumps(body).encode()


def test_zendesk_solved_ticket_gets_a_csat_invitation_that_records_the_answer(csat_stack: Stack) -> None:
    stack = csat_stack
    surveys = stack.url("surveys")
    created = httpx.post(f"{surveys}/v1/admin/surveys", headers=ADMIN, json={
        "name": "Support CSAT", "survey_type": "csat", "trigger": "ticket_solved",
        "question": "How satisfied are you with the help you received?",
        "comment_question": "Anything we could have done better?"})
    assert created.status_code == 201, created.text
    survey_id = created.json()["id"]
    # The product says who Zendesk user 900002 is: the explicit mapping the CSAT relies on.
    send_product_events(stack)
    client = Client(write_key=KEY, host=stack.url("ingest"), sync_mode=True, max_retries=2)
    client.identify("user-1", traits={"zendesk_user_id": ZENDESK_REQUESTER},
                    timestamp=NOW - timedelta(days=3), message_id="e2e-identify-zendesk")
    client.flush()

    body = zendesk_solved_body(datetime.now(UTC).replace(microsecond=0))
    posted = httpx.post(f"{stack.url('ingest')}/v1/webhooks/zendesk", content=body,
                        headers=zendesk_headers(body, ZENDESK_SECRET))
    assert posted.status_code == 200, posted.text
    forged = httpx.post(f"{stack.url('ingest')}/v1/webhooks/zendesk", content=body,
                        headers=zendesk_headers(body, "not-the-secret"))
    assert forged.status_code == 401, forged.text

    invitations = [m for m in stack.sinks.wait_for("email", 1, timeout=60)
                   if m["to"] == ["champion@acme.test"]]
    assert len(invitations) == 1, stack.sinks.received("email")
    [mail] = invitations
    assert mail["subject"] == "How satisfied are you with the help you received?"
    assert "support@acme.test" in mail["from"]
    assert mail["html"]
    found = RESPONSE_LINK.search(mail["text"])
    assert found is not None, mail["text"]
    link = found.group(1)
    assert link.startswith(surveys)

    page = httpx.get(link)
    assert page.status_code == 200, page.text
    assert "How satisfied are you with the help you received?" in page.text
    answered = httpx.post(link, data={"score": "2", "comment": "Took four days to hear back."})
    assert answered.status_code == 303, answered.text
    assert httpx.get(f"{surveys}{answered.headers['location']}").status_code == 200
    again = httpx.post(link, data={"score": "5", "comment": "changed my mind"})
    assert again.status_code == 409, again.text  # single use

    [event] = asyncio.run(read_topic(stack.settings, Topics.from_settings(stack.settings).survey_responses))
    assert (event.account_id, event.user_id, event.payload["survey_type"], event.payload["score"],
            event.payload["comment"], event.payload["campaign_id"], event.payload["ticket_id"]) == (
        ACCOUNT, "user-1", "csat", 2, "Took four days to hear back.", survey_id, "35436")
    csat = httpx.get(f"{surveys}/v1/insights/csat", params={"account_id": ACCOUNT}, headers=API_AUTH).json()
    assert csat["overall"]["responses"] == 1, csat

