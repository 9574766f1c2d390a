"""Scoring's HTTP routes: an account's current health, explained."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import store
from shared.events import Band, Factor
from shared.http import ApiError


class AccountHealthOut(BaseModel):
    account_id: str
    account_name: str | None
    score: float
    band: Band
    factors: list[Factor]
    last_event_at: datetime | None
    updated_at: datetime
    events_applied: int


def build_router(engine: AsyncEngine) -> APIRouter:
    router = APIRouter()

    @router.get("/v1/accounts/{account_id}/health", response_model=AccountHealthOut)
    async def account_health(
        account_id: Annotated[str, Path(min_length=1, max_length=200)],
    ) -> AccountHealthOut:
        """Score 0-100, band, the factors behind it in plain words, and when it last changed."""
        async with engine.connect() as conn:
            row = await store.read_account(conn, account_id)
        if row is None or row["score"] is None:
            raise ApiError(404, "not_found", f"no health score for account {account_id!r} yet")
        return AccountHealthOut(
            account_id=account_id,
            account_name=row["state"].get("account_name"),
            score=row["score"],
            band=Band(row["band"]),
            factors=[Factor.model_validate(f) for f in row["factors"]],
            last_event_at=row["last_event_at"],
            updated_at=row["updated_at"],
            events_applied=row["events_applied"],
        )

    return router
