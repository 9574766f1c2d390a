"""Regression tests, one per fault the fuzzers found, against the running services."""

from __future__ import annotations

import httpx
import pytest

from tests.fuzz.conftest import CREDENTIAL, FuzzStack

AUTH = {"Authorization": f"Bearer {CREDENTIAL}"}


@pytest.mark.parametrize(("service", "path", "field"), [
    # Found by schemathesis: a NUL in a query parameter reached PostgreSQL, which answered
    # "invalid byte sequence for encoding UTF8: 0x00", and the service 500.
    ("scoring", "/v1/portfolio/accounts?account_id=a%00b&account_id=c", "query.account_id"),
    ("alerts", "/v1/account-owners?account_id=%00", "query.account_id"),
    ("surveys", "/v1/insights/nps?account_id=acme%00", "query.account_id"),
    ("surveys", "/v1/accounts/a%00/nps", "path"),
    # ... and in a path parameter.
    ("scoring", "/v1/accounts/a%00b/health", "path"),
    ("alerts", "/v1/recipients/a%00@example.com/preferences", "path"),
])
def test_a_nul_in_the_url_is_a_400_naming_where(fuzz_stack: FuzzStack, service: str, path: str,
                                                field: str) -> None:
    response = httpx.get(f"{fuzz_stack.url(service)}{path}", headers=AUTH)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert [e["field"] for e in body["errors"]] == [field]
    assert "NUL" in body["errors"][0]["message"]


def test_a_clean_url_still_reaches_its_route(fuzz_stack: FuzzStack) -> None:
    response = httpx.get(f"{fuzz_stack.url('scoring')}/v1/portfolio/accounts?account_id=acme", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["accounts"] == []


def _deep(depth: int) -> str:
    return '{"n":' * depth + "1" + "}" * depth


@pytest.mark.parametrize(("route", "body", "field"), [
    # Found by the mutation fuzzer: orjson encodes at most 254 levels, so a message nested
    # deeper failed its size measurement (or, in a small body, its envelope) and answered 500.
    ("track", '{"userId":"u1","event":"E","properties":' + _deep(300) + "}", "body"),
    ("batch", '{"batch":[{"type":"track","userId":"u1","event":"E"},'
              '{"type":"track","userId":"u1","event":"E","properties":' + _deep(260) + "}]}", "batch[1]"),
    # ... one level short of the encoder's limit once inside its envelope (+2 in a batch body).
    ("track", '{"userId":"u1","event":"E","properties":' + _deep(252) + "}", "body"),
    # Found in the batch path: a batch-level context merged into an item whose own context is
    # not an object raised TypeError (500); the item's model now names it.
    ("batch", '{"context":{"ip":"10.0.0.1"},"batch":[{"type":"track","userId":"u1","event":"E",'
              '"context":"x"}]}', "batch[0].context"),
])
def test_malformed_segment_bodies_found_by_fuzzing_are_a_400_naming_the_field(
        fuzz_stack: FuzzStack, route: str, body: str, field: str) -> None:
    response = httpx.post(f"{fuzz_stack.url('ingest')}/v1/{route}", content=body.encode(),
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert field in [e["field"] for e in response.json()["errors"]]


def test_nesting_within_the_limit_is_accepted(fuzz_stack: FuzzStack) -> None:
    body = '{"userId":"u1","event":"E","properties":' + _deep(250) + "}"
    response = httpx.post(f"{fuzz_stack.url('ingest')}/v1/track", content=body.encode(),
                          headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 200, response.text
