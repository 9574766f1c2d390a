"""`GET /v1/account-owners`: who owns which account, with its unresolved alerts (read:alerts)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.store.book import owned_accounts
from shared.api_tokens import Scope
from shared.token_auth import TokenGuard

MAX_ACCOUNTS = 5_000


class OpenAlertOut(BaseModel):
    id: int
    signal_type: str
    severity: str
    summary: str
    state: str
    opened_at: datetime


class OwnedAccountOut(BaseModel):
    account_id: str
    account_name: str | None
    csm_email: str | None
    open_alerts: list[OpenAlertOut]


class OwnersOut(BaseModel):
    accounts: list[OwnedAccountOut]


def build_book_router(engine: AsyncEngine, guard: TokenGuard) -> APIRouter:
    router = APIRouter(dependencies=[Depends(guard.requires(Scope.READ_ALERTS))])

    @router.get("/v1/account-owners", response_model=OwnersOut)
    async def account_owners(
        csm_email: Annotated[str | None, Query(max_length=254)] = None,
        account_id: Annotated[list[str] | None, Query(max_length=100)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ACCOUNTS)] = MAX_ACCOUNTS,
    ) -> OwnersOut:
        """Accounts owned by `csm_email` (their `csm_email` trait) and/or with the given ids, each
        with its unresolved alerts, most severe first."""
        async with engine.connect() as conn:
            rows = await owned_accounts(conn, csm_email=csm_email, account_ids=account_id or [], limit=limit)
        return OwnersOut(accounts=[OwnedAccountOut.model_validate(r) for r in rows])

    return router
