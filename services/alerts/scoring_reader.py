"""Alerts reading an account's health from scoring's HTTP API (never its tables), with the
service token the services call each other with (`CHURNWATCH_ALERTS_SCORING_TOKEN`, else the
bootstrap admin token)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from shared.settings import Settings


class ScoringUnavailable(Exception):
    pass


class ScoringReader:
    def __init__(self, settings: Settings, timeout: float = 2.0) -> None:
        token = settings.alerts_scoring_token or settings.bootstrap_api_token
        self._base = settings.alerts_scoring_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
        # A slash command must be answered within 3 seconds: scoring gets two of them.
        self._timeout = timeout

    async def health(self, account_id: str) -> dict[str, Any] | None:
        """The account's health (scoring's `GET /v1/accounts/{id}/health`), None if it has none."""
        url = f"{self._base}/v1/accounts/{quote(account_id, safe='')}/health"
        try:
            async with httpx.AsyncClient(timeout=self._timeout, headers=self._headers) as client:
                response = await client.get(url)
        except httpx.HTTPError as exc:
            raise ScoringUnavailable(f"scoring is unreachable ({type(exc).__name__})") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise ScoringUnavailable(f"scoring answered {response.status_code}")
        body = response.json()
        return body if isinstance(body, dict) else None
