"""The whole pipeline on real Kafka and PostgreSQL, driven by the official Segment client.

A product backend sends group/identify/track through `segment-analytics-python` pointed at
ingest; a detractor answers an NPS survey; the owning CSM gets exactly one Slack message
and one email naming the account and the reason; the health endpoint explains the score.
Sending everything again, with the same ids, changes nothing and alerts no one twice.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from segment.analytics.client import Client

from tests.support.infra import Infra
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
        response = httpx.get(f"{stack.url('scoring')}/v1/accounts/{ACCOUNT}/health")
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

    nps = httpx.get(f"{stack.url('surveys')}/v1/accounts/{ACCOUNT}/nps").json()
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

    alerts = httpx.get(f"{stack.url('alerts')}/v1/accounts/{ACCOUNT}/alerts").json()
    assert len(alerts["alerts"]) == 1


def test_every_service_answers_health_readiness_and_metrics(stack: Stack) -> None:
    for name, process in stack.services.items():
        assert httpx.get(f"{process.base_url}/healthz").json() == {"status": "ok"}
        ready = httpx.get(f"{process.base_url}/readyz")
        assert ready.status_code == 200, (name, ready.text)
        metrics = httpx.get(f"{process.base_url}/metrics").text
        assert "churnwatch_http_requests_total" in metrics, name
