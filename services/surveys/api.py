"""Surveys' HTTP routes: submit (or amend) a response, and an account's NPS.

A submission answers 200 only after its row and its event are both durable: the row is
written, the event acknowledged by Kafka, then the transaction commits. While Kafka is
unreachable it answers 503 and keeps nothing, so the survey tool's retry is safe.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys import store
from services.surveys.arithmetic import nps
from services.surveys.metrics import REJECTIONS, RESPONSES
from services.surveys.revisions import (
    Decision,
    Outcome,
    ResponseConflict,
    decide,
    first_revision,
    to_envelope,
)
from services.surveys.submission import MAX_ID_CHARS, SurveyResponseIn, validate_response
from shared.events import SurveyType, utcnow
from shared.http import ApiError, parse_json, read_body_limited
from shared.publisher import EventPublisher, PublishFailed
from shared.settings import Settings
from shared.write_keys import key_from_headers, source_for_key


class SubmissionOut(BaseModel):
    response_id: str
    revision: int
    status: Literal["accepted", "unchanged"]


class PeriodOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    from_: datetime | None = Field(alias="from")
    to: datetime | None


class NpsOut(BaseModel):
    account_id: str
    nps: float | None = Field(description="% promoters - % detractors; null with no responses")
    responses: int
    promoters: int
    passives: int
    detractors: int
    period: PeriodOut


class SurveysApi:
    def __init__(self, settings: Settings, engine: AsyncEngine, publisher: EventPublisher) -> None:
        self.settings = settings
        self.engine = engine
        self.publisher = publisher

    async def read_submission(self, request: Request) -> tuple[SurveyResponseIn, str]:
        """The validated response and the source of its write key, or the ApiError to answer."""
        try:
            source = await source_for_key(self.engine, key_from_headers(request))
            raw = await read_body_limited(request, self.settings.max_request_bytes)
            return validate_response(parse_json(raw)), source
        except ApiError as exc:
            REJECTIONS.labels(exc.code).inc()
            raise

    async def record(self, incoming: SurveyResponseIn, source: str) -> Decision:
        """Store the submission and publish the stored revision's event, in one transaction."""
        received_at = utcnow()
        try:
            async with self.engine.begin() as conn:
                candidate = first_revision(incoming, received_at)
                if await store.insert_if_new(conn, candidate):
                    decision = Decision(Outcome.NEW, candidate)
                else:
                    existing = await store.lock_response(conn, incoming.response_id)
                    if existing is None:  # rows are never deleted, so this is a bug, not a race
                        raise RuntimeError(f"response {incoming.response_id} vanished after a conflict")
                    decision = decide(existing, incoming, received_at)
                    if decision.outcome.changed:
                        await store.update_response(conn, decision.response)
                # Also for an unchanged response: the first publish's ack may have been lost.
                # The event id is the same, so consumers count it once.
                await self.publisher.publish([to_envelope(decision.response, source)])
        except ResponseConflict as exc:
            REJECTIONS.labels("response_conflict").inc()
            raise ApiError(409, "response_conflict", str(exc), exc.errors) from exc
        except PublishFailed as exc:
            REJECTIONS.labels("kafka_unavailable").inc()
            raise ApiError(503, "kafka_unavailable", f"{exc}; nothing was stored, retry later",
                           headers={"Retry-After": "5"}) from exc
        RESPONSES.labels(incoming.survey_type.value, decision.outcome.value).inc()
        return decision


def build_router(api: SurveysApi) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.post("/responses", response_model=SubmissionOut)
    async def submit_response(request: Request) -> SubmissionOut:
        """Record a survey response; the same response_id again amends it."""
        incoming, source = await api.read_submission(request)
        decision = await api.record(incoming, source)
        return SubmissionOut(
            response_id=decision.response.response_id,
            revision=decision.response.revision,
            status="accepted" if decision.outcome.changed else "unchanged",
        )

    @router.get("/accounts/{account_id}/nps", response_model=NpsOut)
    async def account_nps(
        account_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
        since: Annotated[AwareDatetime | None, Query(description="submitted at or after")] = None,
        until: Annotated[AwareDatetime | None, Query(description="submitted before")] = None,
    ) -> NpsOut:
        """The account's NPS over responses submitted in [since, until), with counts and period."""
        if since is not None and until is not None and since >= until:
            message = "until must be later than since"
            raise ApiError(400, "invalid_request", f"until: {message}",
                           [{"field": "until", "message": message}])
        async with api.engine.connect() as conn:
            histogram = await store.score_histogram(conn, account_id, SurveyType.NPS, since, until)
        result = nps(histogram.counts)
        return NpsOut(
            account_id=account_id,
            nps=result.nps,
            responses=result.responses,
            promoters=result.promoters,
            passives=result.passives,
            detractors=result.detractors,
            period=PeriodOut(from_=since or histogram.first_submitted_at,
                             to=until or histogram.last_submitted_at),
        )

    return router
