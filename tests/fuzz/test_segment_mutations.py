"""A mutation fuzzer for the Segment parsers, from what the real clients send.

Every message the pinned Segment-protocol clients sent (tests/ingest/client_payloads.py), and
their whole batch bodies, mutated (tests/fuzz/mutations.py), go through the steps ingest's
routes take, in-process for speed: parse, validate, attribute, build and encode the envelope.
Each must either be refused with a 4xx whose body names a field (or says the body is not JSON
at all), or be accepted, and then its envelope must decode (shared.events.decode, what every
consumer runs) as the same event. A smaller set goes over HTTP to the running ingest, which
must answer 200 or a documented 4xx, never a 5xx.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.ingest.api import SINGLE_MESSAGE_TYPES, items_in
from services.ingest.attribution import explicit_accounts
from services.ingest.segment import encode_wire, event_id_for, occurred_at, wire_envelope
from services.ingest.validation import Limits, ValidatedMessage, validate_batch, validate_single
from shared.door import DEFAULT_EVENT_WINDOW, may_hold_nul
from shared.events import decode
from shared.http import ApiError, parse_json
from shared.settings import Settings
from tests.fuzz.conftest import CREDENTIAL, FuzzStack
from tests.fuzz.mutations import mutated
from tests.ingest.client_payloads import captured_batches, captured_messages

IN_PROCESS_EXAMPLES = int(os.environ.get("CHURNWATCH_FUZZ_MUTATIONS", "400"))
HTTP_EXAMPLES = max(1, IN_PROCESS_EXAMPLES // 8)
DEFAULTS = Settings()
LIMITS = Limits(DEFAULTS.max_event_bytes, DEFAULTS.max_batch_items, DEFAULT_EVENT_WINDOW)
# Refusals of the body as a whole, before there is any field to name.
BODY_LEVEL = {"invalid_json", "payload_too_large"}
RECEIVED_AT = datetime.now(UTC)


def _targets() -> list[tuple[str, Any]]:
    """(route, document): each captured message to its own route and inside a batch, and each
    captured batch body as it was sent."""
    out: list[tuple[str, Any]] = []
    for message in captured_messages():
        out.append((message["type"], {k: v for k, v in message.items() if k != "type"}))
        out.append(("batch", {"batch": [message], "writeKey": "k"}))
    out.extend(("batch", json.loads(text)) for text in captured_batches())
    return out


TARGETS = _targets()


@st.composite
def mutated_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    route, document = draw(st.sampled_from(TARGETS))
    return route, draw(mutated(document))


def _through_the_parsers(route: str, raw: bytes) -> list[ValidatedMessage]:
    """What the route does with a body before the database and Kafka (services.ingest.api)."""
    body = parse_json(raw)
    items_in(body)  # counted against the key's rate before validation
    if route == "batch":
        return validate_batch(body, LIMITS, len(raw), may_hold_nul(raw))
    return validate_single(body, route, LIMITS, may_hold_nul(raw))


def _judge(route: str, raw: bytes) -> str:
    """'accepted' or 'refused'; raises (the test fails) on anything a route would answer 5xx."""
    try:
        items = _through_the_parsers(route, raw)
    except ApiError as error:
        assert 400 <= error.status < 500, (error.status, error.code, error.message)
        if error.code not in BODY_LEVEL:
            assert error.errors, f"{error.code} names no field: {error.message}"
            assert all(e["field"] and e["message"] for e in error.errors), error.errors
        return "refused"
    messages = [item.message for item in items]
    explicit_accounts(messages)
    for item in items:
        event_id = event_id_for(item.message, item.raw)
        wire = wire_envelope(item.message, event_id=event_id, account_id="acct-1", source="fuzz",
                             received_at=RECEIVED_AT, occurred=occurred_at(item.message, RECEIVED_AT))
        envelope = decode(encode_wire(wire), LIMITS.event_window)
        assert envelope.event_id == event_id
        assert envelope.type.value == wire["type"]
        assert envelope.user_id == (item.message.user_id or None)
    return "accepted"


def test_the_captured_payloads_are_accepted_unmutated() -> None:
    """The fuzzer's starting points are valid: a mutation is what gets them refused."""
    assert len(TARGETS) > 20
    assert {route for route, _ in TARGETS} == {*SINGLE_MESSAGE_TYPES, "batch"}
    for route, document in TARGETS:
        assert _judge(route, json.dumps(document).encode()) == "accepted", (route, document)


def test_a_mutated_payload_is_accepted_whole_or_refused_naming_a_field() -> None:
    outcomes: dict[str, int] = {}

    @settings(max_examples=IN_PROCESS_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=mutated_requests())
    def judge(request: tuple[str, bytes]) -> None:
        outcome = _judge(*request)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    judge()
    # Not vacuous: some mutations are accepted, most are refused.
    assert outcomes.get("accepted", 0) > 0 and outcomes.get("refused", 0) > 0, outcomes


@pytest.mark.timeout(300)
def test_mutated_payloads_over_http_get_200_or_a_documented_4xx(fuzz_stack: FuzzStack) -> None:
    base = fuzz_stack.url("ingest")
    statuses: dict[int, int] = {}
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {CREDENTIAL}",
                                               "Content-Type": "application/json"}, timeout=30) as client:

        @settings(max_examples=HTTP_EXAMPLES, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(request=mutated_requests())
        def post(request: tuple[str, bytes]) -> None:
            route, raw = request
            # The body's writeKey wins over the Bearer token: a real key, or the mutation's.
            real_key = f'"writeKey": "{CREDENTIAL}"'.encode()
            response = client.post(f"/v1/{route}", content=raw.replace(b'"writeKey": "k"', real_key))
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            assert response.status_code < 500, response.text
            assert response.headers["content-type"].startswith("application/json")
            body = response.json()
            if response.status_code >= 400:
                assert isinstance(body["code"], str) and isinstance(body["message"], str)
                if response.status_code == 400 and body["code"] not in BODY_LEVEL:
                    assert body["errors"] and all(e["field"] for e in body["errors"]), body
            else:
                assert body == {"success": True}

        post()
    assert statuses.get(200, 0) > 0 and sum(n for s, n in statuses.items() if s >= 400) > 0, statuses
