"""What the console reads, through the other services' HTTP APIs with its service token (never
their tables): scoring's health, history and portfolio, alerts' owners and alert history."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from shared.request_ids import forwarded
from shared.settings import Settings

CHUNK = 100  # scoring's most account ids per portfolio request
PAGE = 500
MAX_ACCOUNTS = 5_000


class UpstreamUnavailable(Exception):
    """A service the console reads from did not answer, or refused the console's token."""

    def __init__(self, service: str, detail: str) -> None:
        super().__init__(f"{service}: {detail}")
        self.service = service
        self.detail = detail


class Upstream:
    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        token = settings.console_api_token or settings.bootstrap_api_token
        headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}
        options: dict[str, Any] = {"headers": headers, "timeout": 10.0}
        if transport is not None:
            options["transport"] = transport
        self.scoring = httpx.AsyncClient(base_url=settings.console_scoring_url, **options)
        self.alerts = httpx.AsyncClient(base_url=settings.console_alerts_url, **options)

    async def close(self) -> None:
        await self.scoring.aclose()
        await self.alerts.aclose()

    @staticmethod
    async def _get(client: httpx.AsyncClient, service: str, path: str,
                   params: Any = None, missing_ok: bool = False) -> Any:
        try:
            response = await client.get(path, params=params, headers=forwarded())
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(service, f"unreachable ({type(exc).__name__})") from exc
        if missing_ok and response.status_code == 404:
            return None
        if response.status_code != 200:
            json = response.headers.get("content-type") == "application/json"
            code = response.json().get("code", "") if json else ""
            raise UpstreamUnavailable(service, f"answered {response.status_code} {code}".strip())
        return response.json()

    async def owners(self, *, csm_email: str | None = None,
                     account_ids: list[str] | None = None) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = [("limit", str(MAX_ACCOUNTS))]
        if csm_email is not None:
            params.append(("csm_email", csm_email))
        params += [("account_id", a) for a in account_ids or []]
        body = await self._get(self.alerts, "alerts", "/v1/account-owners", params)
        accounts: list[dict[str, Any]] = body["accounts"]
        return accounts

    async def portfolio(self, *, account_ids: list[str] | None, band: str | None) -> list[dict[str, Any]]:
        """Scored accounts, riskiest first: only `account_ids` when given, else every account."""
        base: list[tuple[str, str]] = [("band", band)] if band else []
        found: list[dict[str, Any]] = []
        if account_ids is not None:
            for start in range(0, len(account_ids), CHUNK):
                chunk = account_ids[start:start + CHUNK]
                params = [*base, ("limit", str(CHUNK)), *(("account_id", a) for a in chunk)]
                page = await self._get(self.scoring, "scoring", "/v1/portfolio/accounts", params)
                found += page["accounts"]
            return sorted(found, key=lambda a: (a["score"], a["account_id"]))
        cursor: str | None = None
        while len(found) < MAX_ACCOUNTS:
            params = [*base, ("limit", str(PAGE))] + ([("cursor", cursor)] if cursor else [])
            page = await self._get(self.scoring, "scoring", "/v1/portfolio/accounts", params)
            found += page["accounts"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        return found

    async def health(self, account_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._get(
            self.scoring, "scoring", f"/v1/accounts/{_segment(account_id)}/health", missing_ok=True)
        return found

    async def history(self, account_id: str, limit: int = 200) -> list[dict[str, Any]]:
        body = await self._get(self.scoring, "scoring", f"/v1/accounts/{_segment(account_id)}/health/history",
                               {"limit": limit})
        changes: list[dict[str, Any]] = body["changes"]
        return changes

    async def alerts_of(self, account_id: str, limit: int = 50) -> list[dict[str, Any]]:
        body = await self._get(self.alerts, "alerts", f"/v1/accounts/{_segment(account_id)}/alerts",
                               {"limit": limit})
        alerts: list[dict[str, Any]] = body["alerts"]
        return alerts


def _segment(value: str) -> str:
    return quote(value, safe="")
