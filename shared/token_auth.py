"""The read APIs' door: `Authorization: Bearer <API token>` with the scope a route needs.

401 without a token or with one nobody issued (or that was revoked), 403 with a valid token
lacking the scope; both with RFC 6750's `WWW-Authenticate` and the usual JSON error body.
A service may also accept a static token from its settings (alerts' API token, scoring's
override token, from before API tokens existed) for the scopes it always stood for.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import Request
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.api_tokens import Scope, find_token, grants
from shared.http import ApiError


@dataclass(frozen=True)
class Caller:
    """Who is calling: a token's name (`tokens list` shows it) or the setting's name."""

    name: str
    token_id: str | None
    scopes: frozenset[str]


@dataclass(frozen=True)
class StaticToken:
    """A token from settings that stands for `scopes` on this service only."""

    setting: str
    value: SecretStr | None
    scopes: frozenset[Scope]


def bearer_of(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _challenge(error: str, scope: Scope) -> dict[str, str]:
    return {"WWW-Authenticate": f'Bearer error="{error}", scope="{scope.value}"'}


class TokenGuard:
    def __init__(self, engine: AsyncEngine, static: Sequence[StaticToken] = ()) -> None:
        self.engine = engine
        self.static = [s for s in static if s.value is not None]

    async def check(self, request: Request, scope: Scope) -> Caller:
        presented = bearer_of(request)
        if presented is None:
            raise ApiError(401, "missing_token",
                           f"this API needs a token with scope {scope.value}: send Authorization: Bearer "
                           "<token> (create one with `churnwatch tokens create`)",
                           headers={"WWW-Authenticate": f'Bearer scope="{scope.value}"'})
        for static in self.static:
            assert static.value is not None
            if hmac.compare_digest(presented.encode(), static.value.get_secret_value().encode()):
                if scope not in static.scopes:
                    raise ApiError(403, "insufficient_scope",
                                   f"{static.setting} does not grant {scope.value}",
                                   headers=_challenge("insufficient_scope", scope))
                return Caller(static.setting, None, frozenset(s.value for s in static.scopes))
        info = await find_token(self.engine, presented)
        if info is None or not info.active:
            raise ApiError(401, "invalid_token", "the bearer token is unknown or revoked",
                           headers=_challenge("invalid_token", scope))
        if not grants(info.scopes, scope):
            raise ApiError(403, "insufficient_scope",
                           f"token {info.token_id} ({info.name}) lacks scope {scope.value}; "
                           f"it has {', '.join(sorted(info.scopes)) or 'none'}",
                           headers=_challenge("insufficient_scope", scope))
        return Caller(info.name, info.token_id, info.scopes)

    def requires(self, scope: Scope) -> Callable[[Request], Awaitable[Caller]]:
        """A FastAPI dependency: `Depends(guard.requires(Scope.READ_HEALTH))`."""
        async def dependency(request: Request) -> Caller:
            return await self.check(request, scope)
        return dependency
