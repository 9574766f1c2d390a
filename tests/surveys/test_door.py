"""Validation at the door (issue 17) on surveys: NUL text and response times far from now are a
400 naming the field, and nothing is stored or published."""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from tests.surveys.conftest import Surveys
from tests.surveys.test_surveys_api import BASIC, response
from tests.surveys.test_vendor_payloads import delighted_event, form_response, nps_answer
from tests.surveys.test_webhooks import post_delighted, post_typeform, published, rows


def fields(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_request"
    return [error["field"] for error in answer.json()["errors"]]


async def submit(surveys: Surveys, body: dict[str, Any]) -> httpx.Response:
    return await surveys.client.post("/v1/responses", content=orjson.dumps(body),
                                     headers={**BASIC, "Content-Type": "application/json"})


async def nothing_kept(surveys: Surveys) -> bool:
    return not await rows(surveys) and not await published(surveys)


async def test_response_api_refuses_nul_and_far_times(surveys: Surveys) -> None:
    assert fields(await submit(surveys, response(comment="Too\u0000 slow"))) == ["comment"]
    assert fields(await submit(surveys, response(response_id="r\u0000"))) == ["response_id"]
    assert fields(await submit(surveys, response(submitted_at="9999-12-31T23:59:59Z"))) == ["submitted_at"]
    assert fields(await submit(surveys, response(submitted_at="0001-01-01T00:00:00Z"))) == ["submitted_at"]
    assert await nothing_kept(surveys)


async def test_vendor_webhooks_refuse_nul_and_far_times(surveys: Surveys) -> None:
    assert fields(await post_delighted(surveys, delighted_event(comment="bad\u0000"))) == [
        "event_data.comment"]
    far_ahead = 253402300799  # 9999-12-31T23:59:59Z
    assert fields(await post_delighted(surveys, delighted_event(created_at=far_ahead,
                                                                updated_at=far_ahead))) == [
        "submitted_at", "updated_at"]
    with_nul_key = form_response([nps_answer(9)], hidden={"account\u0000": "acme"})
    assert fields(await post_typeform(surveys, with_nul_key)) == ["form_response.hidden.account\\u0000"]
    assert await nothing_kept(surveys)
