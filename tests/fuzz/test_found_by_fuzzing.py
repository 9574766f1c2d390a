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
