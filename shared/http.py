"""HTTP plumbing every service shares: ops endpoints, error bodies, request metrics, size limits.

Errors always come back as `{"code": ..., "message": ..., "errors": [{"field", "message"}]}`
so a client (or the engineer reading its logs) sees which field was wrong and why.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
import structlog
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, SecretStr, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.door import NUL, NUL_MESSAGE, EventTimeWindow, nul_errors
from shared.metrics import DEPENDENCY_UP, HTTP_LATENCY, HTTP_REQUESTS, record_build_info
from shared.request_ids import RequestIds

log = structlog.get_logger(__name__)

ReadinessCheck = Callable[[], Awaitable[bool]]
OutageCheck = Callable[[BaseException], "ApiError | None"]
DEFAULT_RETRY_AFTER = "5"
DEPENDENCY_CHECK_SECONDS = 2.0
ESCAPED_NUL = "\\u0000"  # how a NUL in a field's name is shown in an error
ModelT = TypeVar("ModelT", bound=BaseModel)


class ApiError(Exception):
    """An error the client can act on; rendered as `{code, message, errors}`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.headers = headers


def error_response(
    status: int, code: str, message: str, errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = errors
    return JSONResponse(status_code=status, content=body, headers=headers)


def field_errors(
    exc: ValidationError | RequestValidationError, prefix: str = "", union_tag: str | None = None
) -> list[dict[str, str]]:
    """Pydantic's errors as `{field: "batch[2].userId", message: ...}`.

    `union_tag`: for a tagged union, pydantic puts the member's tag first in the location;
    it tells a client nothing, so it is left out.
    """
    out = []
    for err in exc.errors():
        loc = list(err.get("loc", ()))
        if union_tag is not None and loc[:1] == [union_tag]:
            loc = loc[1:]
        loc = [part for part in loc if part != "body"]
        path = prefix
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        out.append({"field": path or "body", "message": str(err.get("msg", "invalid"))})
    return out


def invalid_request(errors: list[dict[str, str]]) -> ApiError:
    """A 400 whose message lists the first few field errors and whose body lists them all."""
    message = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    if len(errors) > 5:
        message += f" (and {len(errors) - 5} more)"
    return ApiError(400, "invalid_request", message, errors)


def refuse_nul(body: Any, may_hold_nul: bool = True) -> None:
    """A 400 naming every text in `body` holding NUL (shared.door). `may_hold_nul`: False when
    the raw body was seen to hold none, so clean bodies skip the walk."""
    if may_hold_nul and (errors := nul_errors(body)):
        raise invalid_request(errors)


def refuse_times_outside(window: EventTimeWindow, times: dict[str, datetime | None],
                         received_at: datetime) -> None:
    """A 400 naming every time in `times` outside `window` around `received_at`."""
    if errors := window.errors(times, received_at):
        raise invalid_request(errors)


def require_bearer(request: Request, token: SecretStr | None, setting: str) -> None:
    """Refuse a request without `Authorization: Bearer <token>`; 404 while `token` is unset,
    so a route that nobody enabled does not even say it exists."""
    if token is None:
        raise ApiError(404, "admin_disabled", f"this API is disabled: set {setting} to enable it")
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), expected):
        raise ApiError(401, "invalid_admin_token",
                       f"send the {setting} value as Authorization: Bearer <token>",
                       headers={"WWW-Authenticate": "Bearer"})


def validate_body(model: type[ModelT], body: Any) -> ModelT:
    """The parsed JSON body as `model`, or a 400 naming each invalid field."""
    if not isinstance(body, dict):
        raise invalid_request([{"field": "body", "message": "must be a JSON object"}])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(field_errors(exc)) from exc


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"request body is not valid JSON: {exc}") from exc


def render(error: ApiError) -> JSONResponse:
    """An ApiError's JSON response; a 503 always says when to retry (`Retry-After`)."""
    headers = error.headers
    if error.status == 503 and not any(h.lower() == "retry-after" for h in headers or {}):
        headers = {**(headers or {}), "Retry-After": DEFAULT_RETRY_AFTER}
    return error_response(error.status, error.code, error.message, error.errors, headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return render(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        error = invalid_request(field_errors(exc))
        return error_response(error.status, error.code, error.message, error.errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))


def ops_router(service: str, checks: Sequence[tuple[str, ReadinessCheck]]) -> APIRouter:
    """`/healthz` (the process answers), `/readyz` (its dependencies answer), `/metrics`.

    Both `/readyz` and `/metrics` run the dependency checks and set `churnwatch_dependency_up`,
    so every scrape says whether the database (and Kafka) answer, probed or not.
    """
    router = APIRouter()

    async def answers(check: ReadinessCheck) -> bool:
        # A dependency that swallows packets must not hold a scrape past Prometheus' timeout.
        try:
            return await asyncio.wait_for(check(), timeout=DEPENDENCY_CHECK_SECONDS)
        except TimeoutError:
            return False

    async def check_dependencies() -> dict[str, bool]:
        results = {name: await answers(check) for name, check in checks}
        for name, up in results.items():
            DEPENDENCY_UP.labels(service, name).set(1 if up else 0)
        return results

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results = await check_dependencies()
        ready = all(results.values())
        return JSONResponse(
            status_code=200 if ready else 503,
            content={"status": "ready" if ready else "not_ready", "checks": results},
        )

    @router.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await check_dependencies()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


class RequestMetrics:
    """Counts and times every request by its route template (never by raw path: no ids in labels)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], template, str(status)).inc()
            HTTP_LATENCY.labels(self.service, template).observe(time.perf_counter() - started)


class ErrorBodies:
    """Whatever escapes a route is still answered with the documented JSON body: a dependency
    outage (`outage` turns it into an ApiError: PostgreSQL unreachable, Kafka not acking) as
    503 with `Retry-After`, any other error as 500 `internal_error`, logged with its traceback.
    Never Starlette's plain-text "Internal Server Error"."""

    def __init__(self, app: ASGIApp, outage: OutageCheck | None = None) -> None:
        self.app = app
        self.outage = outage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            if started:  # too late for another answer: the server closes the connection
                raise
            error = self.outage(exc) if self.outage is not None else None
            if error is not None:
                log.warning("dependency_unavailable", code=error.code, path=scope.get("path"),
                            error=repr(exc))
            else:
                log.error("unhandled_error", path=scope.get("path"), exc_info=exc)
                error = ApiError(500, "internal_error",
                                 "the service failed to handle this request; it has been logged")
            await render(error)(scope, receive, send)


class RefuseNulInUrl:
    """A 400 naming the parameter for a path or query parameter holding NUL (shared.door), before
    any route: PostgreSQL refuses NUL in text, so one reaching a query would answer 500."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (errors := url_nul_errors(scope)):
            await render(invalid_request(errors))(scope, receive, send)
            return
        await self.app(scope, receive, send)


def url_nul_errors(scope: Scope) -> list[dict[str, str]]:
    """`{field, message}` for the path and each query parameter holding NUL (raw or `%00`)."""
    errors = []
    if NUL in scope.get("path", ""):
        errors.append({"field": "path", "message": NUL_MESSAGE})
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or NUL.encode() in query:
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if NUL in name or NUL in value:
                shown = name.replace(NUL, ESCAPED_NUL)
                errors.append({"field": f"query.{shown}", "message": NUL_MESSAGE})
    return errors


async def read_body_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(400, "payload_too_large",
                       f"request body is {declared} bytes; the limit is {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(400, "payload_too_large",
                           f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(service: str, title: str, checks: Sequence[tuple[str, ReadinessCheck]],
               outage: OutageCheck | None = None, **kwargs: Any) -> FastAPI:
    """`outage`: which escaping exceptions are a dependency outage (503), see ErrorBodies."""
    app = FastAPI(title=title, **kwargs)
    install_error_handlers(app)
    app.include_router(ops_router(service, checks))
    record_build_info(service)
    # Inside the metrics (added last is outermost), so they count its 503s and 500s.
    app.add_middleware(RefuseNulInUrl)
    app.add_middleware(ErrorBodies, outage=outage)
    app.add_middleware(RequestMetrics, service=service)
    # Outermost: every answer carries the id, and every log line of the request names it.
    app.add_middleware(RequestIds)
    return app
