"""Survey-tool webhook routes: verify the vendor's signature, translate, map, store, publish.

A webhook whose secret is not configured answers 404 (`webhook_not_configured`). Signature
problems answer 401 naming the header; an unreadable payload 400 naming the field; a
signed delivery that is not an NPS/CSAT/CES answer 200 `ignored` (so the vendor does not
retry it). Otherwise 200 only after the response is stored and, when mapped, acknowledged
by Kafka (503 and nothing kept otherwise, so the vendor's retry is safe).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys.metrics import REJECTIONS, UNSUBSCRIBES, WEBHOOKS_IGNORED
from services.surveys.responses.recording import ResponseRecorder
from services.surveys.responses.revisions import IncomingResponse
from services.surveys.store import campaigns as campaign_store
from services.surveys.vendors import delighted, typeform
from services.surveys.vendors.signatures import (
    DELIGHTED_HEADER,
    TYPEFORM_HEADER,
    verify_delighted,
    verify_typeform,
)
from services.surveys.vendors.webhook_results import Ignored, Unsubscribed, WebhookResult
from shared.door import may_hold_nul
from shared.http import ApiError, parse_json, read_body_limited, refuse_nul, refuse_times_outside
from shared.openapi_bodies import request_body
from shared.settings import Settings, event_time_window
from shared.webhook_signatures import SignatureError

Clock = Callable[[], datetime]


def build_webhook_router(settings: Settings, engine: AsyncEngine, recorder: ResponseRecorder,
                         clock: Clock) -> APIRouter:
    router = APIRouter(prefix="/v1/webhooks")
    window = event_time_window(settings)

    def secret_of(value: SecretStr | None, name: str, variable: str) -> str:
        if value is None or not value.get_secret_value():  # compose passes unset as ""
            raise ApiError(404, "webhook_not_configured",
                           f"the {name} webhook is off: set {variable} to its signing secret")
        return value.get_secret_value()

    async def handle(source: str, result: WebhookResult) -> dict[str, Any]:
        if isinstance(result, Ignored):
            WEBHOOKS_IGNORED.labels(source).inc()
            return {"status": "ignored", "reason": result.reason}
        if isinstance(result, Unsubscribed):
            async with engine.begin() as conn:
                new = await campaign_store.unsubscribe(conn, result.email, clock(), None)
            if new:
                UNSUBSCRIBES.labels(source).inc()
            return {"status": "unsubscribed"}
        assert isinstance(result, IncomingResponse)
        decision = await recorder.record(result)
        return {"status": "accepted" if decision.outcome.changed else "unchanged",
                "response_id": decision.response.response_id, "revision": decision.response.revision,
                "account_id": decision.response.account_id, "mapped": decision.response.publishable}

    async def guarded(source: str, verify: Callable[[bytes], None],
                      parse: Callable[[Any], WebhookResult], request: Request) -> dict[str, Any]:
        try:
            body = await read_body_limited(request, settings.max_request_bytes)
            try:
                verify(body)
            except SignatureError as exc:
                raise ApiError(401, exc.code, exc.message) from exc
            payload = parse_json(body)
            refuse_nul(payload, may_hold_nul(body))
            result = parse(payload)
            if isinstance(result, IncomingResponse):
                refuse_times_outside(window, {"submitted_at": result.submitted_at,
                                              "updated_at": result.updated_at}, clock())
            return await handle(source, result)
        except ApiError as exc:
            REJECTIONS.labels(exc.code).inc()
            raise

    @router.post("/delighted", openapi_extra=request_body(
        delighted.body_schema(), "A Delighted webhook delivery (signed: X-Delighted-Webhook-Signature)."))
    async def delighted_webhook(request: Request) -> dict[str, Any]:
        """Delighted `survey_response.created` / `.updated` (and `.unsubscribed`)."""
        secret = secret_of(settings.delighted_webhook_secret, "Delighted",
                           "CHURNWATCH_DELIGHTED_WEBHOOK_SECRET")
        signature = request.headers.get(DELIGHTED_HEADER)
        return await guarded("delighted", lambda body: verify_delighted(secret, body, signature),
                             lambda body: delighted.parse(body).result, request)

    @router.post("/typeform", openapi_extra=request_body(
        typeform.body_schema(), "A Typeform webhook delivery (signed: Typeform-Signature)."))
    async def typeform_webhook(request: Request) -> dict[str, Any]:
        """Typeform `form_response` with NPS / opinion-scale answers and hidden fields."""
        secret = secret_of(settings.typeform_webhook_secret, "Typeform",
                           "CHURNWATCH_TYPEFORM_WEBHOOK_SECRET")
        signature = request.headers.get(TYPEFORM_HEADER)
        return await guarded("typeform", lambda body: verify_typeform(secret, body, signature),
                             typeform.parse, request)

    return router
