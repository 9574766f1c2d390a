"""The outside world: Slack (incoming webhooks or the Web API with a bot token) and SMTP.

Each attempt ends in an `Outcome`, never an exception, and within the delivery timeout (the
dispatcher's lease depends on that bound).

With the Web API every message carries metadata naming its delivery key, so after a crash or
a lost response Churnwatch can ask Slack whether the message landed (`find`) instead of
posting it again. Incoming webhooks and SMTP offer no such question.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

import aiohttp
import aiosmtplib
import httpx
import orjson
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from services.alerts.delivery.policy import (
    Outcome,
    Verdict,
    classify_slack,
    classify_slack_api,
    classify_smtp_error,
    network_error,
    parse_retry_after,
)
from services.alerts.routing.config import RoutingConfig, secret_value
from services.alerts.routing.plan import SLACK_WEBHOOK_CHANNEL
from shared.events import utcnow
from shared.settings import Settings
from shared.smtp import send_email

METADATA_EVENT = "churnwatch_delivery"
HISTORY_PAGES_MAX = 10
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{6,}$")
_MEMBER_ID = re.compile(r"^[UW][A-Z0-9]{6,}$")


class Transport(StrEnum):
    API = "api"
    WEBHOOK = "webhook"


@dataclass(frozen=True)
class SlackRoute:
    transport: Transport
    pacing_key: str  # one ~1 message/s budget per webhook, or per channel on the Web API
    url: str | None = None  # the webhook
    channel_field: str | None = None  # legacy webhooks honour a `channel` override


class SlackRoutes:
    """Which way a Slack address is reached: the bot token wins; else the channel's own webhook
    from the YAML; else the default webhook."""

    def __init__(self, settings: Settings, config: RoutingConfig) -> None:
        self._api = secret_value(settings.slack_bot_token) is not None
        self._default = settings.slack_webhook_url
        self._webhooks = config.slack.webhooks

    def route(self, address: str) -> SlackRoute | None:
        if self._api:
            return SlackRoute(Transport.API, f"slack-api:{address}")
        url = self._webhooks.get(address)
        if url:
            return SlackRoute(Transport.WEBHOOK, _webhook_key(url), url)
        if self._default:
            channel = None if address == SLACK_WEBHOOK_CHANNEL or _MEMBER_ID.match(address) else address
            return SlackRoute(Transport.WEBHOOK, _webhook_key(self._default), self._default, channel)
        return None


def _webhook_key(url: str) -> str:
    return "slack-webhook:" + hashlib.sha256(url.encode()).hexdigest()[:16]


def is_channel_id(address: str) -> bool:
    return _CHANNEL_ID.match(address) is not None


def is_member_id(address: str) -> bool:
    return _MEMBER_ID.match(address) is not None


class SlackWebhookSender:
    def __init__(self, client: httpx.AsyncClient, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def send(self, route: SlackRoute, body: dict[str, Any]) -> Outcome:
        assert route.url is not None
        if route.channel_field:
            body = {**body, "channel": route.channel_field}
        try:
            response = await asyncio.wait_for(self._client.post(route.url, json=body), self._timeout)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return network_error(exc)
        retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
        return classify_slack(response.status_code, response.text, retry_after)


class Found(StrEnum):
    YES = "found"
    NO = "not_found"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Lookup:
    found: Found
    ts: str | None = None
    channel: str | None = None
    detail: str = ""


class LeaseBoundRateLimitHandler(AsyncRateLimitErrorRetryHandler):
    """slack_sdk's rate-limit retry (it sleeps what `Retry-After` asks, then sends again), but
    only for a wait that fits in the delivery's lease: a longer one ends the attempt as a retry,
    and the outbox's pacing holds that channel's next sends past it (across processes)."""

    def __init__(self, max_wait_seconds: float) -> None:
        super().__init__(max_retry_count=1)
        self.max_wait_seconds = max_wait_seconds

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        values = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        wait = parse_retry_after(values[0] if values else None, utcnow())
        # slack_sdk adds up to a second of jitter to the wait.
        return wait is not None and wait + 1 <= self.max_wait_seconds


def slack_web_client(
    session: aiohttp.ClientSession, base_url: str, token: str, timeout: float, max_wait_seconds: float
) -> AsyncWebClient:
    # No connection-error retry handler: a request cut off after it left may have posted, and
    # only the dispatcher (which checks the channel's history first) may send it again.
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=max(int(timeout), 1),
        session=session,
        retry_handlers=[LeaseBoundRateLimitHandler(max_wait_seconds)],
    )


class SlackApiSender:
    """chat.postMessage, chat.update and the look-ups behind them, through slack_sdk."""

    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def send(
        self,
        channel: str,
        body: dict[str, Any],
        *,
        delivery_key: str,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Outcome:
        # Slack documents message metadata (chat.postMessage `metadata`, read back with
        # conversations.history `include_all_metadata`) as the place for an app's own structured
        # data on a message; it is not shown to people, unlike a marker in the text, so the
        # delivery key there is what `find` looks for after a crash.
        extra: dict[str, Any] = {}
        if thread_ts:
            extra = {"thread_ts": thread_ts, "reply_broadcast": broadcast}
        return await self._outcome(
            self._client.chat_postMessage(
                channel=channel,
                text=str(body.get("text", "")),
                blocks=body.get("blocks"),
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": METADATA_EVENT, "event_payload": {"delivery_key": delivery_key}},
                **extra,
            )
        )

    async def update(self, channel: str, ts: str, body: dict[str, Any]) -> Outcome:
        """Edit a posted message in place (idempotent: the same edit twice shows the same)."""
        outcome = await self._outcome(
            self._client.chat_update(
                channel=channel, ts=ts, text=str(body.get("text", "")), blocks=body.get("blocks")
            )
        )
        if outcome.verdict is Verdict.SENT:
            return replace(outcome, external_id=outcome.external_id or ts,
                           external_channel=outcome.external_channel or channel)
        return outcome

    async def _outcome(self, call: Awaitable[AsyncSlackResponse]) -> Outcome:
        try:
            response = await call
        except SlackApiError as exc:
            # Usually an AsyncSlackResponse; an unreadable body comes with aiohttp's own response.
            answer = exc.response
            status = int(getattr(answer, "status_code", None) or getattr(answer, "status", 0) or 0)
            raw = getattr(answer, "data", None)
            retry_after = parse_retry_after(
                _header(getattr(answer, "headers", None), "retry-after"), utcnow()
            )
            data = raw if isinstance(raw, dict) else None
            text = orjson.dumps(data).decode() if data is not None else str(exc)
            return classify_slack_api(status, data, text, retry_after)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            return network_error(exc)
        data = response.data if isinstance(response.data, dict) else None
        return classify_slack_api(response.status_code, data, orjson.dumps(data).decode() if data else "")

    async def channel_id(self, address: str) -> str | None:
        """A channel id for history look-ups: ids as they are, a member's DM via conversations.open,
        a name via conversations.list."""
        if is_channel_id(address):
            return address
        if is_member_id(address):
            body = await self._call(self._client.conversations_open(users=address))
            channel = body.get("channel") if body else None
            return str(channel["id"]) if isinstance(channel, dict) and channel.get("id") else None
        # A channel name ("#cs-acme"): look it up (needs the channels:read / groups:read scopes).
        name = address.removeprefix("#")
        cursor: str | None = None
        for _ in range(HISTORY_PAGES_MAX):
            body = await self._call(
                self._client.conversations_list(
                    types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor
                )
            )
            if not body:
                return None
            for channel in body.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") == name and channel.get("id"):
                    return str(channel["id"])
            cursor = (body.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
        return None

    async def find(
        self, channel_id: str, delivery_key: str, oldest: datetime, thread_ts: str | None = None
    ) -> Lookup:
        """Whether a message with this delivery key's metadata is in the channel (or thread)."""
        method = "conversations.replies" if thread_ts else "conversations.history"
        since = f"{oldest.timestamp() - 60:.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_PAGES_MAX):
            if thread_ts:
                call = self._client.conversations_replies(
                    channel=channel_id, ts=thread_ts, oldest=since, include_all_metadata=True,
                    limit=200, cursor=cursor,
                )
            else:
                call = self._client.conversations_history(
                    channel=channel_id, oldest=since, include_all_metadata=True, limit=200, cursor=cursor
                )
            errors: list[str] = []
            body = await self._call(call, errors)
            if not body:
                return Lookup(Found.UNKNOWN, detail=f"{method}: {errors[0] if errors else 'no answer'}")
            for message in body.get("messages") or []:
                meta = message.get("metadata") or {}
                if (
                    meta.get("event_type") == METADATA_EVENT
                    and (meta.get("event_payload") or {}).get("delivery_key") == delivery_key
                ):
                    return Lookup(Found.YES, str(message.get("ts")), channel_id)
            cursor = (body.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return Lookup(Found.NO)
        return Lookup(Found.UNKNOWN, detail="history too long to search")

    async def _call(
        self, call: Awaitable[AsyncSlackResponse], errors: list[str] | None = None
    ) -> dict[str, Any] | None:
        try:
            response = await call
        except SlackApiError as exc:
            if errors is not None:
                data = exc.response.data
                errors.append(str(data.get("error")) if isinstance(data, dict) else "unreadable answer")
            return None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            if errors is not None:
                errors.append(type(exc).__name__)
            return None
        return response.data if isinstance(response.data, dict) else None


def _header(headers: Any, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


class EmailSender:
    def __init__(self, settings: Settings, timeout: float) -> None:
        self._settings = settings
        self._timeout = timeout

    async def send(self, message: EmailMessage) -> Outcome:
        try:
            reply = await send_email(self._settings, message, self._timeout)
        except aiosmtplib.SMTPException as exc:
            return classify_smtp_error(exc)
        except (OSError, TimeoutError) as exc:
            return network_error(exc)
        return Outcome(Verdict.SENT, "ok", 250, reply[:1000], external_id=str(message["Message-ID"]))
