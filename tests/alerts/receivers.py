"""Local stand-ins for Slack and an SMTP server that record what they receive.

Both are real servers on free local ports (an HTTP server under uvicorn, an aiosmtpd
SMTP server), so the alerts service talks to them exactly as it would to the real ones.
Use them as async context managers so they are always stopped:

    async with SlackReceiver() as slack, SmtpReceiver() as smtp:
        slack.answer("rate_limited", times=1)   # the next request gets a 429
        ...
        await slack.wait_for_accepted(1)
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal

import orjson
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from deploy.local.processes import free_port

SlackAnswer = Literal["ok", "invalid_payload", "server_error", "rate_limited"]

# What Slack's incoming webhooks answer, per the Slack docs.
_SLACK_ANSWERS: dict[str, tuple[int, str, dict[str, str]]] = {
    "ok": (200, "ok", {}),
    "invalid_payload": (400, "invalid_payload", {}),
    "server_error": (500, "rollup_error", {}),
    "rate_limited": (429, "rate_limited", {"Retry-After": "1"}),
}


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `condition` until it holds, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


# --- Slack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackPost:
    body: dict[str, Any]
    status: int
    at: float  # time.monotonic() when received

    @property
    def accepted(self) -> bool:
        return self.status == 200


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The test process owns SIGINT/SIGTERM; an in-process receiver must not take them.
        yield


class SlackReceiver:
    """A Slack-like incoming webhook at `url`; answers `ok` unless told otherwise."""

    def __init__(self) -> None:
        self.port = free_port()
        self.posts: list[SlackPost] = []
        self._script: deque[SlackAnswer] = deque()
        app = Starlette(routes=[Route("/services/{rest:path}", self._receive, methods=["POST"])])
        self._server = _QuietServer(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, lifespan="off", access_log=False,
            log_level="warning",
        ))
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/test"

    def answer(self, answer: SlackAnswer, times: int = 1) -> None:
        """Answer the next `times` requests with `answer` (then `ok` again)."""
        self._script.extend([answer] * times)

    @property
    def accepted(self) -> list[SlackPost]:
        return [p for p in self.posts if p.accepted]

    async def wait_for_accepted(self, count: int, timeout: float = 20.0) -> list[SlackPost]:
        await wait_until(lambda: len(self.accepted) >= count, timeout, f"{count} accepted Slack posts")
        return self.accepted

    async def _receive(self, request: Request) -> PlainTextResponse:
        body = orjson.loads(await request.body())
        status, text, headers = _SLACK_ANSWERS[self._script.popleft() if self._script else "ok"]
        self.posts.append(SlackPost(body=body, status=status, at=time.monotonic()))
        return PlainTextResponse(text, status_code=status, headers=headers)

    async def start(self) -> SlackReceiver:
        self._task = asyncio.create_task(self._server.serve(), name="slack-receiver")
        await wait_until(lambda: self._server.started or self._task is None or self._task.done(),
                         10.0, "the Slack receiver to start")
        if self._task.done():
            self._task.result()  # raises why it did not start
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
            self._task = None

    async def __aenter__(self) -> SlackReceiver:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()


# --- SMTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    accepted: bool

    @property
    def subject(self) -> str:
        return str(self.message["subject"])

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_multipart():
                content = part.get_content()
                assert isinstance(content, str)
                return content
        raise KeyError(content_type)


@dataclass
class _SmtpHandler:
    received: list[ReceivedEmail] = field(default_factory=list)
    rejections: deque[int] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            code = self.rejections.popleft() if self.rejections else None
            self.received.append(ReceivedEmail(envelope.mail_from, list(envelope.rcpt_tos), message,
                                               accepted=code is None))
        if code is not None:
            return f"{code} rejected by the test SMTP receiver"
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """A real SMTP server (aiosmtpd) on 127.0.0.1:`port`, in its own thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self._handler = _SmtpHandler()
        self._controller = Controller(self._handler, hostname="127.0.0.1", port=self.port)
        self._started = False

    def reject(self, code: int = 550, times: int = 1) -> None:
        """Refuse the next `times` messages at DATA with `code`."""
        with self._handler.lock:
            self._handler.rejections.extend([code] * times)

    @property
    def received(self) -> list[ReceivedEmail]:
        with self._handler.lock:
            return list(self._handler.received)

    @property
    def accepted(self) -> list[ReceivedEmail]:
        return [m for m in self.received if m.accepted]

    async def wait_for_accepted(self, count: int, timeout: float = 20.0) -> list[ReceivedEmail]:
        await wait_until(lambda: len(self.accepted) >= count, timeout, f"{count} accepted emails")
        return self.accepted

    async def start(self) -> SmtpReceiver:
        await asyncio.to_thread(self._controller.start)
        self._started = True
        return self

    async def stop(self) -> None:
        if self._started:
            await asyncio.to_thread(self._controller.stop)
            self._started = False

    async def __aenter__(self) -> SmtpReceiver:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
