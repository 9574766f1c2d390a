"""Stand-ins for the outside world on this machine: a Slack-like webhook and an SMTP server.

`make run` starts them so a newcomer sees alerts arrive without a Slack workspace or a
mail server; the end-to-end tests start them too and read what they recorded. The Slack
side answers like an incoming webhook (`200 ok`); the SMTP side is a real aiosmtpd server.
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

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
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
        else:
            print(f"[slack] {entry.get('text')}", flush=True)
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

    return Starlette(routes=[Route("/{path:path}", webhook, methods=["POST"])])


async def serve(slack_port: int, smtp_port: int, record: Path | None) -> None:
    recorder = Recorder(record)
    controller = Controller(_SmtpHandler(recorder), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        config = uvicorn.Config(slack_app(recorder), host="127.0.0.1", port=slack_port,
                                log_level="warning", access_log=False)
        await uvicorn.Server(config).serve()
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.local.sinks")
    parser.add_argument("--slack-port", type=int, default=8090)
    parser.add_argument("--smtp-port", type=int, default=8025)
    parser.add_argument("--record", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args.slack_port, args.smtp_port, args.record))


if __name__ == "__main__":
    main()
