"""Schemathesis against every service's OpenAPI, over HTTP, on the real broker and database.

Each operation of each service (published or a page, see tests/fuzz/schemas.py) gets a
bounded number of generated requests, valid ones (positive: what the schema allows) and
invalid ones (negative: what it does not), once without credentials and once with them (the
bootstrap API token, the admin token, a write key; webhook deliveries signed with the
configured secret, so the parsers behind the signatures are reached too; the console's
session cookie of a signed-in lead).

Asserted: no 5xx at all (the broker and PostgreSQL are up, so not even a 503), and every
error of an API route is the documented JSON body `{code, message}`. Seeded: the same run
every time (hypothesis `derandomize`); CHURNWATCH_FUZZ_SEED picks another, and
CHURNWATCH_FUZZ_EXAMPLES raises the examples per operation (docs/development.md).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.transport import Response

from services.ingest.helpdesk.signatures import generic_signature, intercom_signature, zendesk_signature
from services.surveys.vendors.signatures import (
    DELIGHTED_HEADER,
    TYPEFORM_HEADER,
    delighted_signature,
    typeform_signature,
)
from tests.fuzz.conftest import CREDENTIAL, WEBHOOK_SECRET, FuzzStack
from tests.fuzz.schemas import SERVICES, every_route_schema, service_app

EXAMPLES = int(os.environ.get("CHURNWATCH_FUZZ_EXAMPLES", "6"))
SEED = os.environ.get("CHURNWATCH_FUZZ_SEED")
Signer = Callable[[bytes], dict[str, str]]


def _now() -> str:
    return str(int(time.time()))


def _zendesk(body: bytes) -> dict[str, str]:
    stamp = _now()
    return {"X-Zendesk-Webhook-Signature": zendesk_signature(WEBHOOK_SECRET, stamp, body),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp}


def _generic(body: bytes) -> dict[str, str]:
    stamp = _now()
    return {"X-Churnwatch-Signature": generic_signature(WEBHOOK_SECRET, stamp, body),
            "X-Churnwatch-Signature-Timestamp": stamp}


SIGNERS: dict[str, Signer] = {
    "/v1/webhooks/zendesk": _zendesk,
    "/v1/webhooks/intercom": lambda body: {"X-Hub-Signature": intercom_signature(WEBHOOK_SECRET, body)},
    "/v1/webhooks/tickets": _generic,
    "/v1/webhooks/delighted": lambda body: {DELIGHTED_HEADER: delighted_signature(WEBHOOK_SECRET, body)},
    "/v1/webhooks/typeform": lambda body: {TYPEFORM_HEADER: typeform_signature(WEBHOOK_SECRET, body)},
}


def _documented_error(response: Response) -> str | None:
    """Why an API route's error response is not `{code, message[, errors]}`, or None."""
    content_type = ";".join(response.headers.get("content-type", []))
    if not content_type.startswith("application/json"):
        return f"content-type {content_type!r}, not JSON"
    try:
        body = json.loads(response.content)
    except ValueError:
        return "body is not JSON"
    if not (isinstance(body, dict) and isinstance(body.get("code"), str)
            and isinstance(body.get("message"), str)):
        return f"body {body!r:.200} has no code and message"
    return None


class Outcomes:
    def __init__(self) -> None:
        self.failures: dict[str, str] = {}
        self.statuses: dict[int, int] = {}

    def record(self, label: str, problem: str) -> None:
        self.failures.setdefault(label, problem)


def _send(case: Any, base_url: str, session: requests.Session, credentials: bool) -> Response:
    # (The console's session cookie, when credentialed, is already in `session`.)
    headers = {"Authorization": f"Bearer {CREDENTIAL}"} if credentials else {}
    signer = SIGNERS.get(case.operation.path) if credentials else None
    if signer is not None and case.media_type == "application/json" and case.body is not NOT_SET:
        # Signed over the exact bytes sent (a negative case's body may be bytes already).
        raw = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        headers.update({"Content-Type": "application/json", **signer(raw)})
        response: Response = case.call(base_url=base_url, session=session, headers=headers,
                                                data=raw, timeout=30)
        return response
    response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
    return response


def _fuzz_operation(operation: Any, base_url: str, session: requests.Session, credentials: bool,
                    is_api: bool, outcomes: Outcomes) -> None:
    label = f"{operation.method.upper()} {operation.path}"
    strategy = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                         operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, derandomize=SEED is None, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        response = _send(case, base_url, session, credentials)
        outcomes.statuses[response.status_code] = outcomes.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=[not_a_server_error])
        if is_api and response.status_code >= 400 and (problem := _documented_error(response)):
            raise AssertionError(f"{response.status_code}: {problem}")

    if SEED is not None:
        run = seed(int(SEED))(run)
    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a group
        outcomes.record(label, f"{type(exc).__name__}: {str(exc)[:3000]}")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("credentials", [False, True], ids=["anonymous", "credentialed"])
@pytest.mark.parametrize("service", SERVICES)
def test_fuzzed_requests_get_no_5xx_and_documented_errors(fuzz_stack: FuzzStack, service: str,
                                                          credentials: bool) -> None:
    app = service_app(service, fuzz_stack.settings)
    published = {(method, path) for path, item in app.openapi()["paths"].items() for method in item}
    schema = schemathesis.openapi.from_dict(every_route_schema(app))
    outcomes = Outcomes()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"no operation in {service}'s schema"
    with requests.Session() as session:
        if credentials:
            session.cookies.update(fuzz_stack.console_cookies)
        for operation in operations:
            _fuzz_operation(operation, fuzz_stack.url(service), session, credentials,
                            (operation.method.lower(), operation.path) in published, outcomes)
    sent = sum(outcomes.statuses.values())
    print(f"{service} ({'with' if credentials else 'without'} credentials): {len(operations)} operations, "
          f"{sent} requests, statuses {dict(sorted(outcomes.statuses.items()))}")
    assert sent >= len(operations), f"only {sent} requests for {len(operations)} operations"
    assert outcomes.failures == {}, "\n\n".join(f"{k}: {v}" for k, v in outcomes.failures.items())
