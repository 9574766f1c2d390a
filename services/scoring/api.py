"""Scoring's HTTP routes: an account's health explained, its history, overrides, the portfolio."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.scoring import store
from services.scoring.config import Scorecard
from services.scoring.consumer import Scorer
from services.scoring.overrides import override_topic
from services.scoring.scorecard import health
from shared.api_tokens import Scope
from shared.events import (
    Band,
    Envelope,
    EventType,
    Factor,
    HealthOverridePayload,
    utcnow,
)
from shared.http import ApiError, invalid_request
from shared.publisher import EventPublisher, PublishFailed
from shared.settings import Settings
from shared.token_auth import StaticToken, TokenGuard

AccountId = Annotated[str, Path(min_length=1, max_length=200)]
MAX_OVERRIDE_DAYS = 365
MAX_ACCOUNT_FILTER = 100


class Trend(BaseModel):
    days: int
    score: float | None = Field(
        description="the shown score at that moment of event time; None before history"
    )
    change: float | None


class OverrideOut(BaseModel):
    override_id: str
    kind: Literal["score", "band"]
    value: float | str
    reason: str | None
    author: str
    set_at: datetime
    expires_at: datetime | None


class AuditOut(BaseModel):
    override_id: str
    action: Literal["set", "clear"]
    kind: str | None
    score: float | None
    band: str | None
    reason: str | None
    author: str
    expires_at: datetime | None
    created_at: datetime


class AccountHealthOut(BaseModel):
    account_id: str
    account_name: str | None
    segment: str | None
    score: float = Field(description="shown score: a CSM's override if one is in force, else computed")
    band: Band
    computed_score: float | None = Field(
        description="the computed score (the live churn-risk model's when model_version is set, else the "
        "scorecard's), whatever an override shows"
    )
    computed_band: Band | None
    override: OverrideOut | None
    trend: list[Trend]
    top_factors: list[str] = Field(description="what pulls the score down most, in plain words")
    factors: list[Factor]
    open_signals: dict[str, list[str]] = Field(
        description="signal type -> dedupe keys raised and not cleared"
    )
    churned: bool
    renewal_date: date | None
    as_of: datetime | None = Field(description="event time the score is computed at (freshness)")
    updated_at: datetime = Field(description="when scoring last wrote this account (wall clock)")
    last_event_at: datetime | None
    events_applied: int
    late_events: int = Field(
        description="events that arrived beyond the lateness bound (applied best-effort)"
    )
    scorecard_version: str | None
    model_version: int | None = Field(
        default=None, description="the churn-risk model version the score is from; None: the scorecard"
    )
    override_audit: list[AuditOut]


class ChangeOut(BaseModel):
    id: int
    event_id: str
    cause_type: str
    occurred_at: datetime
    previous_score: float | None
    score: float
    previous_band: Band | None
    band: Band
    computed_score: float
    segment: str
    override: bool
    factors: list[Factor] = Field(description="the three measures pulling the score down most, in words")
    contributions: list[dict[str, Any]] = Field(description="each measure's points before and after")
    replayed: bool
    model_version: int | None = Field(default=None, description="the churn-risk model; None: the scorecard")
    recorded_at: datetime


class HistoryOut(BaseModel):
    account_id: str
    changes: list[ChangeOut]
    next_cursor: str | None


class OverrideIn(BaseModel):
    kind: Literal["score", "band"]
    score: float | None = Field(default=None, ge=0, le=100)
    band: Band | None = None
    reason: str = Field(min_length=3, max_length=2_000)
    author: str = Field(min_length=1, max_length=200, description="the CSM setting it (name or email)")
    expires_at: AwareDatetime

    @model_validator(mode="after")
    def _value(self) -> OverrideIn:
        if self.kind == "score" and self.score is None:
            raise ValueError("a score override needs `score`")
        if self.kind == "band" and self.band is None:
            raise ValueError("a band override needs `band`")
        return self


class OverrideClearIn(BaseModel):
    author: str = Field(min_length=1, max_length=200)
    reason: str | None = Field(default=None, max_length=2_000)


class OverrideAccepted(BaseModel):
    override_id: str
    account_id: str
    action: Literal["set", "clear"]
    event_id: str
    note: str


class PortfolioAccount(BaseModel):
    account_id: str
    account_name: str | None
    segment: str | None
    score: float
    band: Band
    computed_score: float | None
    overridden: bool
    renewal_date: date | None
    mrr: float | None
    open_signals: list[str]
    last_event_at: datetime | None


class PortfolioPage(BaseModel):
    accounts: list[PortfolioAccount]
    next_cursor: str | None


class BandCount(BaseModel):
    segment: str | None
    band: Band
    accounts: int
    mrr: float


class Bucket(BaseModel):
    from_score: int
    to_score: int
    accounts: int


class PortfolioSummary(BaseModel):
    accounts: int
    by_band: dict[str, int]
    by_segment_and_band: list[BandCount]
    score_distribution: list[Bucket]


class RenewalsOut(BaseModel):
    from_date: date
    to_date: date
    accounts: list[PortfolioAccount]


def _cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode()


def _uncursor(cursor: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        raise ApiError(
            400,
            "invalid_cursor",
            "cursor is not one this API returned",
            [{"field": "cursor", "message": "unreadable"}],
        ) from exc


def _portfolio_account(row: dict[str, Any]) -> PortfolioAccount:
    return PortfolioAccount(
        account_id=row["account_id"],
        account_name=row["account_name"],
        segment=row["segment"],
        score=row["score"],
        band=Band(row["band"]),
        computed_score=row.get("computed_score"),
        overridden=row.get("override") is not None,
        renewal_date=row["renewal_date"],
        mrr=row["mrr"],
        open_signals=sorted(row["signals"] or {}),
        last_event_at=row.get("last_event_at"),
    )


def build_router(engine: AsyncEngine, settings: Settings, publisher: EventPublisher,
                 card: Scorecard, model_status: Callable[[], dict[str, Any]] | None = None) -> APIRouter:
    router = APIRouter()
    legacy = StaticToken("CHURNWATCH_SCORING_OVERRIDE_TOKEN", settings.scoring_override_token,
                         frozenset({Scope.WRITE_OVERRIDES}))
    guard = TokenGuard(engine, [legacy])
    # Health, history and the portfolio name customers, MRR and CSMs: a read:health token each.
    readers = APIRouter(dependencies=[Depends(guard.requires(Scope.READ_HEALTH))])
    writes_overrides = Depends(guard.requires(Scope.WRITE_OVERRIDES))
    scorer = Scorer(card, settings.scoring_lateness_seconds)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    overrides = override_topic(settings.topic_prefix)

    @readers.get("/v1/accounts/{account_id}/health", response_model=AccountHealthOut)
    async def account_health(account_id: AccountId) -> AccountHealthOut:
        """Score, band, trend vs 7 and 30 days ago, the factors in plain words, any override."""
        async with engine.connect() as conn:
            row = await store.read_account(conn, account_id)
            if row is None or row["score"] is None:
                raise ApiError(404, "not_found", f"no health score for account {account_id!r} yet")
            trend = []
            as_of = row["last_event_at"]
            for days in (7, 30):
                then = (
                    await store.score_as_of(conn, account_id, as_of - timedelta(days=days)) if as_of else None
                )
                trend.append(
                    Trend(
                        days=days,
                        score=then[0] if then else None,
                        change=round(row["score"] - then[0], 1) if then else None,
                    )
                )
            audit = await store.override_audit(conn, account_id)
        # The words are read from the stored state: the same model the score came from.
        decoded = scorer.decode(account_id, bytes(row["state"]))
        if row["model_version"] is not None:
            factors = decoded.model_factors()
            top = [f.detail for f in factors if f.contribution < 0][:3]
        else:
            shown = health(decoded.live, card)
            factors = shown.factors if shown is not None else []
            top = [f.detail for f in factors if f.value is not None and f.value < 100][:3]
        override = row["override"]
        return AccountHealthOut(
            account_id=account_id,
            account_name=row["account_name"],
            segment=row["segment"],
            score=row["score"],
            band=Band(row["band"]),
            computed_score=row["computed_score"],
            computed_band=Band(row["computed_band"]) if row["computed_band"] else None,
            override=OverrideOut.model_validate(override) if override else None,
            trend=trend,
            top_factors=top,
            factors=factors,
            open_signals=row["signals"],
            churned=row["churned"],
            renewal_date=row["renewal_date"],
            as_of=as_of,
            updated_at=row["updated_at"],
            last_event_at=row["last_event_at"],
            events_applied=row["events_applied"],
            late_events=row["late_events"],
            scorecard_version=row["scorecard_version"],
            model_version=row["model_version"],
            override_audit=[AuditOut.model_validate(a) for a in audit],
        )

    @readers.get("/v1/accounts/{account_id}/health/history", response_model=HistoryOut)
    async def account_history(
        account_id: AccountId,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
    ) -> HistoryOut:
        """Every recorded change, newest first: what caused it and each measure's part before and after."""
        before = _uncursor(cursor) if cursor else None
        if before is not None and not isinstance(before, int):
            raise ApiError(400, "invalid_cursor", "cursor is not one this API returned")
        async with engine.connect() as conn:
            rows = await store.history_page(conn, account_id, before, limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        return HistoryOut(
            account_id=account_id,
            changes=[ChangeOut.model_validate(r) for r in rows],
            next_cursor=_cursor(rows[-1]["id"]) if more else None,
        )

    async def _publish_override(account_id: str, payload: HealthOverridePayload) -> str:
        now = utcnow()
        event_id = f"override:{payload.override_id}:{payload.action}"
        envelope = Envelope(
            event_id=event_id,
            type=EventType.HEALTH_OVERRIDE,
            account_id=account_id,
            user_id=None,
            occurred_at=now,
            received_at=now,
            source="scoring-api",
            payload=payload.model_dump(mode="json"),
        )
        async with sessions() as session, session.begin():
            # Audited in the same transaction: if Kafka does not take it, nothing is recorded.
            await store.record_override(
                session,
                {
                    "override_id": payload.override_id,
                    "account_id": account_id,
                    "action": payload.action,
                    "kind": payload.kind,
                    "score": payload.score,
                    "band": payload.band.value if payload.band else None,
                    "reason": payload.reason,
                    "author": payload.author,
                    "expires_at": payload.expires_at,
                    "event_id": event_id,
                },
            )
            try:
                await publisher.publish([envelope], topic=overrides)
            except PublishFailed as exc:
                raise ApiError(503, "kafka_unavailable", f"override not recorded: {exc}") from exc
        return event_id

    @router.post(
        "/v1/accounts/{account_id}/health/override", status_code=202, response_model=OverrideAccepted,
        dependencies=[writes_overrides],
    )
    async def set_override(
        account_id: AccountId, body: OverrideIn
    ) -> OverrideAccepted:
        """A CSM's override of the shown score or band, with a reason and an expiry (audited)."""
        now = utcnow()
        if body.expires_at <= now:
            raise ApiError(
                400,
                "invalid_override",
                "expires_at must be in the future",
                [{"field": "expires_at", "message": "must be in the future"}],
            )
        if body.expires_at > now + timedelta(days=MAX_OVERRIDE_DAYS):
            raise ApiError(
                400,
                "invalid_override",
                f"an override lasts at most {MAX_OVERRIDE_DAYS} days",
                [{"field": "expires_at", "message": f"at most {MAX_OVERRIDE_DAYS} days ahead"}],
            )
        override_id = uuid.uuid4().hex
        event_id = await _publish_override(
            account_id,
            HealthOverridePayload(
                action="set",
                override_id=override_id,
                kind=body.kind,
                score=body.score if body.kind == "score" else None,
                band=body.band if body.kind == "band" else None,
                reason=body.reason,
                author=body.author,
                expires_at=body.expires_at.astimezone(UTC),
            ),
        )
        return OverrideAccepted(
            override_id=override_id,
            account_id=account_id,
            action="set",
            event_id=event_id,
            note="applied on event time once scoring consumes it; the computed score stays visible beside it",
        )

    @router.delete(
        "/v1/accounts/{account_id}/health/override", status_code=202, response_model=OverrideAccepted,
        dependencies=[writes_overrides],
    )
    async def clear_override(
        account_id: AccountId, body: OverrideClearIn
    ) -> OverrideAccepted:
        """End the account's override now (audited)."""
        async with engine.connect() as conn:
            row = await store.read_account(conn, account_id)
        if row is None or not row["override"]:
            raise ApiError(404, "no_override", f"account {account_id!r} has no override in force")
        override_id = row["override"]["override_id"]
        event_id = await _publish_override(
            account_id,
            HealthOverridePayload(
                action="clear", override_id=override_id, author=body.author, reason=body.reason
            ),
        )
        return OverrideAccepted(
            override_id=override_id,
            account_id=account_id,
            action="clear",
            event_id=event_id,
            note="cleared on event time once scoring consumes it",
        )

    @readers.get("/v1/portfolio/accounts", response_model=PortfolioPage)
    async def portfolio_accounts(
        band: Band | None = None,
        segment: Annotated[str | None, Query(max_length=60)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=400)] = None,
        include_churned: bool = False,
        account_id: Annotated[list[str] | None, Query(max_length=MAX_ACCOUNT_FILTER)] = None,
    ) -> PortfolioPage:
        """Accounts riskiest first (lowest shown score), filtered by band, segment and, repeated,
        `account_id` (up to 100: a book fetched in chunks)."""
        after = _uncursor(cursor) if cursor else None
        if after is not None and not (isinstance(after, list) and len(after) == 2):
            raise ApiError(400, "invalid_cursor", "cursor is not one this API returned")
        async with engine.connect() as conn:
            rows = await store.accounts_page(
                conn,
                band=band.value if band else None,
                segment=segment,
                after=tuple(after) if after else None,
                limit=limit + 1,
                include_churned=include_churned,
                account_ids=account_id or (),
            )
        more = len(rows) > limit
        rows = rows[:limit]
        return PortfolioPage(
            accounts=[_portfolio_account(r) for r in rows],
            next_cursor=_cursor([rows[-1]["score"], rows[-1]["account_id"]]) if more else None,
        )

    @readers.get("/v1/portfolio/summary", response_model=PortfolioSummary)
    async def portfolio_summary(
        bucket: Annotated[int, Query(ge=1, le=50, description="width of a score bucket")] = 10,
    ) -> PortfolioSummary:
        """Accounts by band and segment (with MRR), and the distribution of scores."""
        if 100 % bucket:
            raise ApiError(
                400,
                "invalid_bucket",
                "bucket must divide 100",
                [{"field": "bucket", "message": "must divide 100 (1, 2, 4, 5, 10, 20, 25, 50)"}],
            )
        async with engine.connect() as conn:
            counts = await store.band_counts(conn)
            histogram = await store.score_histogram(conn, bucket)
        by_band = {"red": 0, "yellow": 0, "green": 0}
        for row in counts:
            by_band[row["band"]] += row["accounts"]
        filled = {h["from_score"]: h["accounts"] for h in histogram}
        return PortfolioSummary(
            accounts=sum(by_band.values()),
            by_band=by_band,
            by_segment_and_band=[
                BandCount(segment=r["segment"], band=Band(r["band"]), accounts=r["accounts"], mrr=r["mrr"])
                for r in counts
            ],
            score_distribution=[
                Bucket(from_score=start, to_score=start + bucket, accounts=filled.get(start, 0))
                for start in range(0, 100, bucket)
            ],
        )

    @readers.get("/v1/portfolio/renewals", response_model=RenewalsOut)
    async def portfolio_renewals(
        days: Annotated[int, Query(ge=1, le=730)] = 90,
        start: Annotated[date | None, Query(alias="from", description="default: today (UTC)")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> RenewalsOut:
        """Accounts renewing within `days` whose health is not green, soonest first."""
        first = start or utcnow().date()
        if first > date.max - timedelta(days=days):
            raise invalid_request([{"field": "from",
                                    "message": f"must be at least {days} days before {date.max}"}])
        last = first + timedelta(days=days)
        async with engine.connect() as conn:
            rows = await store.renewals_not_green(conn, first, last, limit)
        return RenewalsOut(from_date=first, to_date=last, accounts=[_portfolio_account(r) for r in rows])

    if model_status is not None:

        @readers.get("/v1/scoring/model")
        async def serving_model() -> dict[str, Any]:
            """Which churn-risk model this instance serves with (or the scorecard), and any refused."""
            return model_status()

    router.include_router(readers)
    return router
