"""Surveys' HTTP routes for survey tools and dashboards: submit (or amend) a response, an
account's NPS, and insight (NPS/CSAT/CES per account, segment, month, campaign; response rates).

A submission answers 200 only after its row and its event are both durable: the row is
written, the event acknowledged by Kafka, then the transaction commits. While Kafka is
unreachable it answers 503 and keeps nothing, so the survey tool's retry is safe. A
response whose respondent maps to no account yet is stored (200, `"mapped": false`) and
published once a contact maps it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from services.surveys.insight.arithmetic import nps
from services.surveys.insight.figures import figures, merge, month_bounds, month_changes, total
from services.surveys.metrics import REJECTIONS
from services.surveys.responses.recording import ResponseRecorder
from services.surveys.responses.submission import (
    MAX_ID_CHARS,
    SurveyResponseIn,
    to_incoming,
    validate_response,
)
from services.surveys.segments import ArrTier, Dimension, segment_of
from services.surveys.store import campaigns as campaign_store
from services.surveys.store import contacts as contact_store
from services.surveys.store import responses as store
from shared.api_tokens import Scope
from shared.door import may_hold_nul
from shared.events import SurveyType, utcnow
from shared.http import ApiError, parse_json, read_body_limited, refuse_nul, refuse_times_outside
from shared.openapi_bodies import json_body
from shared.settings import Settings, event_time_window
from shared.token_auth import TokenGuard
from shared.write_keys import key_from_headers, source_for_key


class SubmissionOut(BaseModel):
    response_id: str
    revision: int
    status: Literal["accepted", "unchanged"]
    account_id: str | None = Field(description="the account it counts for; null while unmapped")
    mapped: bool


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


class GroupBy(StrEnum):
    MONTH = "month"
    ACCOUNT = "account"
    PLAN = "plan"
    LIFECYCLE_STAGE = "lifecycle_stage"
    ARR_TIER = "arr_tier"


def _period(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        message = "until must be later than since"
        raise ApiError(400, "invalid_request", f"until: {message}", [{"field": "until", "message": message}])


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


class SurveysApi:
    def __init__(self, settings: Settings, engine: AsyncEngine, recorder: ResponseRecorder,
                 tiers: list[ArrTier]) -> None:
        self.settings = settings
        self.engine = engine
        self.recorder = recorder
        self.tiers = tiers
        self.window = event_time_window(settings)

    async def read_submission(self, request: Request) -> tuple[SurveyResponseIn, str]:
        """The validated response and the source of its write key, or the ApiError to answer."""
        try:
            source = await source_for_key(self.engine, key_from_headers(request))
            raw = await read_body_limited(request, self.settings.max_request_bytes)
            body = parse_json(raw)
            refuse_nul(body, may_hold_nul(raw))
            response = validate_response(body)
            refuse_times_outside(self.window, {"submitted_at": response.submitted_at,
                                               "updated_at": response.updated_at}, utcnow())
            return response, source
        except ApiError as exc:
            REJECTIONS.labels(exc.code).inc()
            raise

    async def insight(self, survey_type: SurveyType, group_by: GroupBy, since: datetime | None,
                      until: datetime | None, account_id: str | None, campaign_id: str | None,
                      channel: str | None) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            counted = await store.grouped_counts(
                conn, survey_type, since=since, until=until, by_month=group_by is GroupBy.MONTH,
                account_id=account_id, campaign_id=campaign_id, channel=channel)
            accounts = {a for _, a, _, _ in counted.rows if a is not None}
            traits = (await contact_store.account_traits(conn, accounts)
                      if group_by in (GroupBy.PLAN, GroupBy.LIFECYCLE_STAGE, GroupBy.ARR_TIER) else {})
        unmapped = sum(n for _, a, _, n in counted.rows if a is None)
        period = {"from": _iso(since or counted.first_submitted_at),
                  "to": _iso(until or counted.last_submitted_at)}
        if group_by is GroupBy.MONTH:
            keyed = [(month, score, n) for month, _, score, n in counted.rows]
        elif group_by is GroupBy.ACCOUNT:
            keyed = [(account, score, n) for _, account, score, n in counted.rows]
        else:
            dimension = Dimension(group_by.value)
            keyed = [(segment_of(traits.get(account, {}), self.tiers).value(dimension)
                      if account is not None else None, score, n)
                     for _, account, score, n in counted.rows]
        histograms = merge(keyed)
        groups: list[dict[str, Any]] = []
        changes = month_changes(survey_type, histograms) if group_by is GroupBy.MONTH else {}
        for key in sorted(histograms, key=lambda k: (k is None, k or "")):
            row: dict[str, Any] = {"key": key, **figures(survey_type, histograms[key])}
            if group_by is GroupBy.MONTH:
                start, end = month_bounds(key)
                row["period"] = {"from": _iso(max(start, since) if since else start),
                                 "to": _iso(min(end, until) if until else end)}
                row["change"] = changes[key].change
                row["change_from"] = changes[key].previous_key
            else:
                row["period"] = period
            groups.append(row)
        if group_by is not GroupBy.MONTH:  # biggest groups first, unmapped/unknown last
            groups.sort(key=lambda g: (g["key"] is None, -g["responses"], g["key"] or ""))
        return {
            "survey_type": survey_type.value,
            "group_by": group_by.value,
            "period": period,
            "overall": figures(survey_type, total(histograms.values())),
            "unmapped_responses": unmapped,
            "groups": groups,
        }

    async def campaigns(self, since: datetime | None, until: datetime | None) -> dict[str, Any]:
        async with self.engine.connect() as conn:
            definitions = {d.id: d for d in await campaign_store.list_definitions(conn)}
            counts = {c.definition_id: c for c in await campaign_store.campaign_counts(
                conn, since=since, until=until)}
            responses = await store.responses_by_campaign(conn, list(definitions))
        rows = []
        for definition_id, definition in definitions.items():
            c = counts.get(definition_id)
            invited = c.invited if c else 0
            responded = c.responded if c else 0
            rows.append({
                "campaign_id": definition_id, "name": definition.name,
                "survey_type": definition.survey_type.value, "trigger": definition.trigger.value,
                "status": definition.status.value,
                "invited": invited, "responded": responded,
                "response_rate": round(responded * 100 / invited, 2) if invited else None,
                "pending": c.pending if c else 0, "failed": c.failed if c else 0,
                "cancelled": c.cancelled if c else 0,
                "responses_all_time": responses.get(definition_id, 0),
                "period": {"from": _iso(since or (c.first_invited_at if c else None)),
                           "to": _iso(until or (c.last_invited_at if c else None))},
            })
        return {"campaigns": rows}


def build_router(api: SurveysApi) -> APIRouter:
    router = APIRouter(prefix="/v1")
    # Scores and comments by account: a read:surveys token (responses come in with write keys).
    reads_surveys = Depends(TokenGuard(api.engine).requires(Scope.READ_SURVEYS))

    @router.post("/responses", response_model=SubmissionOut, openapi_extra=json_body(
        SurveyResponseIn, "A survey response, sent with a write key; the same response_id amends it."))
    async def submit_response(request: Request) -> SubmissionOut:
        """Record a survey response; the same response_id again amends it."""
        incoming, source = await api.read_submission(request)
        try:
            decision = await api.recorder.record(to_incoming(incoming, source))
        except ApiError as exc:
            REJECTIONS.labels(exc.code).inc()
            raise
        return SubmissionOut(
            response_id=decision.response.response_id,
            revision=decision.response.revision,
            status="accepted" if decision.outcome.changed else "unchanged",
            account_id=decision.response.account_id,
            mapped=decision.response.publishable,
        )

    @router.get("/accounts/{account_id}/nps", response_model=NpsOut, dependencies=[reads_surveys])
    async def account_nps(
        account_id: Annotated[str, Path(min_length=1, max_length=MAX_ID_CHARS)],
        since: Annotated[AwareDatetime | None, Query(description="submitted at or after")] = None,
        until: Annotated[AwareDatetime | None, Query(description="submitted before")] = None,
    ) -> NpsOut:
        """The account's NPS over responses submitted in [since, until), with counts and period."""
        _period(since, until)
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

    @router.get("/insights/campaigns", dependencies=[reads_surveys])
    async def campaign_insight(
        since: Annotated[AwareDatetime | None, Query(description="invited at or after")] = None,
        until: Annotated[AwareDatetime | None, Query(description="invited before")] = None,
    ) -> dict[str, Any]:
        """Per survey definition: invitations sent, answered through their link, response rate."""
        _period(since, until)
        return await api.campaigns(since, until)

    @router.get("/insights/{survey_type}", dependencies=[reads_surveys])
    async def survey_insight(
        survey_type: SurveyType,
        group_by: GroupBy = GroupBy.MONTH,
        since: Annotated[AwareDatetime | None, Query(description="submitted at or after")] = None,
        until: Annotated[AwareDatetime | None, Query(description="submitted before")] = None,
        account_id: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        campaign_id: Annotated[str | None, Query(max_length=MAX_ID_CHARS)] = None,
        channel: Annotated[str | None, Query(max_length=40)] = None,
    ) -> dict[str, Any]:
        """NPS, CSAT or CES grouped by month (with the change from the previous month),
        account or segment, each group with its response count and period."""
        _period(since, until)
        return await api.insight(survey_type, group_by, since, until, account_id, campaign_id, channel)

    return router
