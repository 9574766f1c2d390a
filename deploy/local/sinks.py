"""Stand-ins for the outside world on this machine: a Slack-like webhook and Web API, and an
SMTP server.

`make run` starts them so a newcomer sees alerts arrive without a Slack workspace or a
mail server; the end-to-end tests start them too and read what they recorded. The Slack
side answers like an incoming webhook (`200 ok`) and, under `/api/`, like the few Web API
methods the Slack app uses (chat.postMessage, chat.update, conversations.*: `make run` with
`CHURNWATCH_DEV_SLACK_APP=1`); the SMTP side is a real aiosmtpd server.
Everything received is printed and appended as JSON lines to `--record`.

    python -m deploy.local.sinks --slack-port 8090 --smtp-port 8025 --record sinks.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import json
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route


class Recorder:
    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry)
        with self._lock:
            if self._path is not None:
                with self._path.open("a") as out:
                    out.write(line + "\n")
        if entry["kind"] == "email":
            print(f"[email] to {', '.join(entry['to'])}: {entry['subject'].strip()}", flush=True)
        elif entry["kind"] == "slack_update":
            print(f"[slack edit {entry.get('ts')}] {entry.get('text')}", flush=True)
        else:
            thread = f" (in thread {entry['thread_ts']})" if entry.get("thread_ts") else ""
            print(f"[slack{thread}] {entry.get('text')}", flush=True)
            # The message's buttons are plain links (acknowledge, snooze, feedback): show them so
            # they can be opened from the terminal.
            for block in entry.get("blocks") or []:
                if isinstance(block, dict) and block.get("type") == "actions":
                    for button in block.get("elements") or []:
                        label = (button.get("text") or {}).get("text", "")
                        print(f"          {label}: {button.get('url')}", flush=True)


class _SmtpHandler:
    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        parts = {part.get_content_type(): part.get_content() for part in message.walk()
                 if not part.is_multipart()}
        self._recorder.record({
            "kind": "email",
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "subject": str(message["subject"]),
            "text": parts.get("text/plain"),
            "html": parts.get("text/html"),
        })
        return "250 Message accepted for delivery"


def slack_app(recorder: Recorder) -> Starlette:
    async def webhook(request: Request) -> PlainTextResponse:
        try:
            payload = await request.json()
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(payload, dict) or not payload.get("text"):
            return PlainTextResponse("invalid_payload", status_code=400)
        recorder.record({"kind": "slack", "path": request.url.path, **payload})
        return PlainTextResponse("ok")

    web_api = _WebApi(recorder)
    return Starlette(routes=[
        Route("/api/{method}", web_api.call, methods=["GET", "POST"]),
        Route("/{path:path}", webhook, methods=["POST"]),
    ])


class _WebApi:
    """Slack's Web API, as far as Churnwatch uses it, kept in memory: channels by name get ids,
    a member id's DM is `D<id>`, every message keeps its metadata for history look-ups."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder
        self._channels: dict[str, str] = {}
        self._messages: list[dict[str, Any]] = []
        self._clock = 1_700_000_000.0

    def _id(self, address: str) -> str:
        if address[:1] in ("C", "G", "D") and address.isupper():
            return address
        if address[:1] in ("U", "W") and address.isupper():
            return "D" + address
        return self._channels.setdefault(address.removeprefix("#"), f"C{len(self._channels) + 1:08d}")

    async def call(self, request: Request) -> JSONResponse:
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return JSONResponse({"ok": False, "error": "not_authed"})
        params: dict[str, Any] = dict(request.query_params)
        raw = await request.body()
        if raw and request.headers.get("content-type", "").startswith("application/json"):
            params.update(json.loads(raw))
        elif raw:
            params.update(parse_qsl(raw.decode()))
        method = request.path_params["method"]
        if method == "chat.postMessage":
            self._clock += 1
            message = {"channel": self._id(str(params.get("channel", ""))), "ts": f"{self._clock:.6f}",
                       "text": params.get("text"), "blocks": params.get("blocks"),
                       "metadata": params.get("metadata"), "thread_ts": params.get("thread_ts")}
            self._messages.append(message)
            self._recorder.record({"kind": "slack", "path": "/api/chat.postMessage", **message})
            return JSONResponse({"ok": True, "channel": message["channel"], "ts": message["ts"]})
        if method == "chat.update":
            channel, ts = self._id(str(params.get("channel", ""))), params.get("ts")
            found = next((m for m in self._messages if m["channel"] == channel and m["ts"] == ts), None)
            if found is None:
                return JSONResponse({"ok": False, "error": "message_not_found"})
            found.update(text=params.get("text"), blocks=params.get("blocks"))
            self._recorder.record({"kind": "slack_update", **found})
            return JSONResponse({"ok": True, "channel": channel, "ts": ts})
        if method == "conversations.open":
            return JSONResponse({"ok": True, "channel": {"id": self._id(str(params.get("users", "")))}})
        if method == "conversations.list":
            channels = [{"id": i, "name": n} for n, i in self._channels.items()]
            return JSONResponse({"ok": True, "channels": channels, "response_metadata": {"next_cursor": ""}})
        if method in ("conversations.history", "conversations.replies"):
            wanted, thread = params.get("channel"), params.get("ts")
            listed = [m for m in self._messages if m["channel"] == wanted
                      and (method == "conversations.history" or thread in (m["ts"], m["thread_ts"]))]
            return JSONResponse({"ok": True, "messages": list(reversed(listed)),
                                 "response_metadata": {"next_cursor": ""}})
        return JSONResponse({"ok": False, "error": "unknown_method"})


async def serve(slack_port: int, smtp_port: int, record: Path | None, host: str = "127.0.0.1") -> None:
    recorder = Recorder(record)
    controller = Controller(_SmtpHandler(recorder), hostname=host, port=smtp_port)
    controller.start()
    try:
        config = uvicorn.Config(slack_app(recorder), host=host, port=slack_port,
                                log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.local.sinks",
        description="Local stand-ins for Slack (incoming webhook and Web API) and an SMTP server; "
                    "prints what they receive.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--slack-port", type=int, default=8090)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--record", type=Path, default=None, help="append what arrives here, as JSON lines")
    args = parser.parse_args()
    asyncio.run(serve(args.slack_port, args.smtp_port, args.record, args.host))


if __name__ == "__main__":
    main()
