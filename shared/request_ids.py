"""Request ids: one id per HTTP request, in its response and in every log line it causes.

A caller's `X-Request-ID` is kept when it is short and printable, so one id follows a request
through a proxy, the console and the service behind it (the console forwards it: `forwarded()`);
otherwise (absent, too long, spaces or control characters that could forge log lines) a new one
is made. Either way the response
carries it back in `X-Request-ID`, and structlog's context holds it as `request_id` while the
request runs.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
MAX_LENGTH = 128
# Visible ASCII only (what proxies and tracers send: UUIDs, "Root=1-...;Parent=..."): no spaces,
# control characters or non-ASCII that could break or forge a log line.
_ACCEPTED = re.compile(rf"[!-~]{{1,{MAX_LENGTH}}}")
_HEADER_KEY = HEADER.lower().encode("latin-1")
_current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accepted(candidate: str | None) -> str | None:
    """`candidate` if it is a usable request id, else None."""
    if candidate is not None and _ACCEPTED.fullmatch(candidate):
        return candidate
    return None


def forwarded() -> dict[str, str]:
    """Headers for a call to another service made while handling a request: the same id, so its
    log lines are found with the caller's."""
    request_id = _current.get()
    return {HEADER: request_id} if request_id is not None else {}


def new_request_id() -> str:
    return uuid.uuid4().hex


def incoming(scope: Scope) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == _HEADER_KEY:
            return bytes(value).decode("latin-1")
    return None


class RequestIds:
    """ASGI middleware: picks the request's id, binds it for logging, and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted(incoming(scope)) or new_request_id()
        header = (_HEADER_KEY, request_id.encode("latin-1"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != _HEADER_KEY]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = _current.set(request_id)
        try:
            with structlog.contextvars.bound_contextvars(request_id=request_id):
                await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)
