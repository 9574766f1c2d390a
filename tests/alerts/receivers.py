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
import dataclasses
import email
import email.policy
import threading
import time
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from deploy.local.processes import free_port

SlackAnswer = Literal[
    "ok", "invalid_payload", "channel_not_found", "server_error", "rate_limited", "invalid_auth",
    "message_not_found",
]

# What Slack answers, per the Slack docs: incoming webhooks in the status and a text body,
# the Web API with HTTP 200 and {"ok": false, "error": ...} except for 429 and 5xx.
_WEBHOOK_ANSWERS: dict[str, tuple[int, str, dict[str, str]]] = {
    "ok": (200, "ok", {}),
    "invalid_payload": (400, "invalid_payload", {}),
    "channel_not_found": (404, "channel_not_found", {}),
    "server_error": (500, "rollup_error", {}),
    "rate_limited": (429, "rate_limited", {"Retry-After": "1"}),
}
_API_ERRORS: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {
    "invalid_payload": (200, {"ok": False, "error": "invalid_blocks"}, {}),
    "channel_not_found": (200, {"ok": False, "error": "channel_not_found"}, {}),
    "server_error": (500, {"ok": False, "error": "internal_error"}, {}),
    "rate_limited": (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
    "invalid_auth": (200, {"ok": False, "error": "invalid_auth"}, {}),
    "message_not_found": (200, {"ok": False, "error": "message_not_found"}, {}),
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
    """One request to an incoming webhook, whatever was answered."""

    body: dict[str, Any]
    status: int
    at: float  # time.monotonic() when received

    @property
    def accepted(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class SlackMessage:
    """A message that landed in a channel (webhook or Web API), as Slack would keep it."""

    channel: str  # channel id
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    metadata: dict[str, Any] | None
    thread_ts: str | None
    broadcast: bool
    at: float

    edits: int = 0  # chat.update calls that changed it

    @property
    def delivery_key(self) -> str | None:
        return ((self.metadata or {}).get("event_payload") or {}).get("delivery_key")


@dataclass(frozen=True)
class ApiCall:
    """One Web API request: its method, when it arrived and the HTTP status answered."""

    method: str
    at: float
    status: int
    error: str | None


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # The test process owns SIGINT/SIGTERM; an in-process receiver must not take them.
        yield


class SlackReceiver:
    """A Slack stand-in: incoming webhooks at `url`, and the Web API methods Churnwatch uses
    (chat.postMessage, chat.update, conversations.history/replies/open/list) at `api_url`, with
    bot `token`; a wrong token is answered `invalid_auth`, as Slack does.

    `answer()` scripts the next answers; `hold()` makes the next message wait (before or after
    it lands in the channel) until `release()`, for crash tests.
    """

    token = "xoxb-churnwatch-test"

    def __init__(self) -> None:
        self.port = free_port()
        self.posts: list[SlackPost] = []
        self.messages: list[SlackMessage] = []
        self.api_calls: list[tuple[str, dict[str, Any]]] = []
        self.api_log: list[ApiCall] = []
        self._script: deque[SlackAnswer] = deque()
        self._channels: dict[str, str] = {}  # name -> id
        self._hold: Literal["before", "after"] | None = None
        self.holding = asyncio.Event()
        self._release = asyncio.Event()
        self._ts = 0
        app = Starlette(
            routes=[
                Route("/services/{rest:path}", self._webhook, methods=["POST"]),
                Route("/api/{method}", self._api, methods=["POST", "GET"]),
            ]
        )
        self._server = _QuietServer(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                lifespan="off",
                access_log=False,
                log_level="warning",
            )
        )
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T000/B000/test"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def answer(self, answer: SlackAnswer, times: int = 1) -> None:
        """Answer the next `times` message requests (chat.postMessage, chat.update, webhook posts)
        with `answer` (then `ok` again)."""
        self._script.extend([answer] * times)

    def hold(self, when: Literal["before", "after"]) -> None:
        """Hold the next message request: `before` it lands (then drop it), or `after` it
        landed in the channel (then answer ok), until `release()`."""
        self._hold = when
        self.holding.clear()
        self._release.clear()

    def release(self) -> None:
        self._release.set()

    def channel_id(self, name: str) -> str:
        if name.startswith(("C", "G", "D")) and name.isupper():
            return name
        if name.startswith(("U", "W")) and name.isupper():
            return f"D{name}"
        return self._channels.setdefault(name, f"C{len(self._channels) + 1:08d}")

    def in_channel(self, name: str) -> list[SlackMessage]:
        wanted = self.channel_id(name)
        return [m for m in self.messages if m.channel == wanted]

    @property
    def accepted(self) -> list[SlackPost]:
        return [p for p in self.posts if p.accepted]

    async def wait_for_accepted(self, count: int, timeout: float = 20.0) -> list[SlackPost]:
        await wait_until(lambda: len(self.accepted) >= count, timeout, f"{count} accepted Slack posts")
        return self.accepted

    async def wait_for_messages(self, count: int, timeout: float = 20.0) -> list[SlackMessage]:
        await wait_until(lambda: len(self.messages) >= count, timeout, f"{count} Slack messages")
        return self.messages

    async def _held(self, land: Callable[[], None]) -> bool:
        """Returns False when the message must be dropped (held before it landed)."""
        when, self._hold = self._hold, None
        if when is None:
            land()
            return True
        if when == "after":
            land()
        self.holding.set()
        await self._release.wait()
        return when == "after"

    async def _webhook(self, request: Request) -> Response:
        body = orjson.loads(await request.body())
        answer = self._script.popleft() if self._script else "ok"
        status, text, headers = _WEBHOOK_ANSWERS[answer]
        at = time.monotonic()

        def land() -> None:
            self.posts.append(SlackPost(body=body, status=status, at=at))
            if status == 200:
                self._store(self.channel_id(body.get("channel") or "#webhook"), body, None, False, at)

        if not await self._held(land):
            return PlainTextResponse("rollup_error", status_code=500)
        return PlainTextResponse(text, status_code=status, headers=headers)

    def _store(
        self, channel: str, body: dict[str, Any], thread_ts: str | None, broadcast: bool, at: float
    ) -> SlackMessage:
        # Slack's ts is wall-clock seconds with microseconds, unique per channel.
        self._ts = max(self._ts + 1, int(time.time() * 1_000_000))
        message = SlackMessage(
            channel=channel,
            ts=f"{self._ts / 1_000_000:.6f}",
            text=str(body.get("text", "")),
            blocks=list(body.get("blocks") or []),
            metadata=body.get("metadata"),
            thread_ts=thread_ts,
            broadcast=broadcast,
            at=at,
        )
        self.messages.append(message)
        return message

    def calls(self, method: str) -> list[ApiCall]:
        return [c for c in self.api_log if c.method == method]

    def message(self, channel: str, ts: str) -> SlackMessage | None:
        return next((m for m in self.messages if m.channel == channel and m.ts == ts), None)

    async def _api(self, request: Request) -> Response:
        response = await self._api_answer(request)
        body = orjson.loads(bytes(response.body)) if isinstance(response, JSONResponse) else {}
        self.api_log.append(
            ApiCall(request.path_params["method"], time.monotonic(), response.status_code, body.get("error"))
        )
        return response

    async def _api_answer(self, request: Request) -> Response:
        method = request.path_params["method"]
        authorization = request.headers.get("authorization")
        if authorization is None:
            return JSONResponse({"ok": False, "error": "not_authed"})
        if authorization != f"Bearer {self.token}":
            return JSONResponse({"ok": False, "error": "invalid_auth"})
        raw = await request.body()
        params: dict[str, Any] = dict(request.query_params)
        if raw and request.headers.get("content-type", "").startswith("application/json"):
            params.update(orjson.loads(raw))
        elif raw:
            params.update(parse_qsl(raw.decode()))
        for key in ("blocks", "metadata"):
            if isinstance(params.get(key), str):
                params[key] = orjson.loads(params[key])
        self.api_calls.append((method, params))
        if method == "chat.postMessage":
            return await self._post_message(params)
        if method == "chat.update":
            return self._update(params)
        if method == "conversations.list":
            return JSONResponse(
                {
                    "ok": True,
                    "channels": [
                        {"id": channel_id, "name": name.removeprefix("#")}
                        for name, channel_id in self._channels.items()
                    ],
                    "response_metadata": {"next_cursor": ""},
                }
            )
        if method == "conversations.open":
            return JSONResponse({"ok": True, "channel": {"id": self.channel_id(params["users"])}})
        if method in ("conversations.history", "conversations.replies"):
            channel = params.get("channel", "")
            if not channel.startswith(("C", "G", "D")):
                return JSONResponse({"ok": False, "error": "channel_not_found"})
            oldest = float(params.get("oldest") or 0)
            found = [m for m in self.messages if m.channel == channel and float(m.ts) > oldest]
            if method == "conversations.replies":
                found = [m for m in found if m.ts == params.get("ts") or m.thread_ts == params.get("ts")]
            else:
                found = [m for m in found if m.thread_ts is None or m.broadcast]
            with_meta = bool(params.get("include_all_metadata"))
            return JSONResponse(
                {
                    "ok": True,
                    "has_more": False,
                    "messages": [
                        {
                            "type": "message",
                            "ts": m.ts,
                            "text": m.text,
                            "thread_ts": m.thread_ts,
                            **({"metadata": m.metadata} if with_meta and m.metadata else {}),
                        }
                        for m in reversed(found)
                    ],
                }
            )
        return JSONResponse({"ok": False, "error": "unknown_method"})

    def _update(self, params: dict[str, Any]) -> Response:
        answer = self._script.popleft() if self._script else "ok"
        if answer != "ok":
            status, body, headers = _API_ERRORS[answer]
            return JSONResponse(body, status_code=status, headers=headers)
        channel = self.channel_id(str(params.get("channel", "")))
        found = self.message(channel, str(params.get("ts", "")))
        if found is None:
            return JSONResponse({"ok": False, "error": "message_not_found"})
        edited = dataclasses.replace(
            found,
            text=str(params.get("text", found.text)),
            blocks=list(params.get("blocks") or found.blocks),
            edits=found.edits + 1,
        )
        self.messages[self.messages.index(found)] = edited
        return JSONResponse({"ok": True, "channel": channel, "ts": found.ts, "text": edited.text})

    def delete(self, message: SlackMessage) -> None:
        """Someone deleted the message in Slack: a later chat.update finds nothing."""
        self.messages = [m for m in self.messages if (m.channel, m.ts) != (message.channel, message.ts)]

    async def wait_for_edits(self, message: SlackMessage, count: int, timeout: float = 20.0) -> SlackMessage:
        def edited() -> bool:
            now = self.message(message.channel, message.ts)
            return now is not None and now.edits >= count

        await wait_until(edited, timeout, f"{count} edits of Slack message {message.ts}")
        found = self.message(message.channel, message.ts)
        assert found is not None
        return found

    async def _post_message(self, params: dict[str, Any]) -> Response:
        answer = self._script.popleft() if self._script else "ok"
        at = time.monotonic()
        if answer != "ok":
            status, body, headers = _API_ERRORS[answer]
            # Recorded as not accepted (an API error is HTTP 200 with "ok": false).
            self.posts.append(SlackPost(body=params, status=status if status != 200 else 400, at=at))
            return JSONResponse(body, status_code=status, headers=headers)
        channel = self.channel_id(str(params.get("channel", "")))
        landed: list[SlackMessage] = []

        def land() -> None:
            self.posts.append(SlackPost(body=params, status=200, at=at))
            landed.append(
                self._store(channel, params, params.get("thread_ts"), bool(params.get("reply_broadcast")), at)
            )

        if not await self._held(land):
            return JSONResponse({"ok": False, "error": "internal_error"}, status_code=500)
        return JSONResponse({"ok": True, "channel": channel, "ts": landed[0].ts})

    async def start(self) -> SlackReceiver:
        self._task = asyncio.create_task(self._server.serve(), name="slack-receiver")
        await wait_until(
            lambda: self._server.started or self._task is None or self._task.done(),
            10.0,
            "the Slack receiver to start",
        )
        if self._task.done():
            self._task.result()  # raises why it did not start
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self.release()
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

    hold_next: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            code = self.rejections.popleft() if self.rejections else None
            self.received.append(
                ReceivedEmail(envelope.mail_from, list(envelope.rcpt_tos), message, accepted=code is None)
            )
        if self.hold_next:
            # Like an MTA that queued the message (above) and then stalls before its 250 reply.
            self.hold_next = False
            self.holding.set()
            await asyncio.to_thread(self.release.wait)
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

    def hold(self) -> None:
        """Keep the next message (it counts as received) but stall before answering, until `release()`."""
        self._handler.holding.clear()
        self._handler.release.clear()
        self._handler.hold_next = True

    def release(self) -> None:
        self._handler.release.set()

    @property
    def holding(self) -> bool:
        return self._handler.holding.is_set()

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
            self.release()
            await asyncio.to_thread(self._controller.stop)
            self._started = False

    async def __aenter__(self) -> SmtpReceiver:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()
