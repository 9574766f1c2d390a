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
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from enum import StrEnum
from typing import Any

import aiosmtplib
import httpx
import orjson

from services.alerts.config import RoutingConfig, secret_value
from services.alerts.delivery_policy import (
    Outcome,
    Verdict,
    classify_slack,
    classify_slack_api,
    classify_smtp_error,
    network_error,
    parse_retry_after,
)
from services.alerts.routing import SLACK_WEBHOOK_CHANNEL
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


class SlackApiSender:
    def __init__(self, client: httpx.AsyncClient, base_url: str, token: str, timeout: float) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout

    async def send(
        self,
        channel: str,
        body: dict[str, Any],
        *,
        delivery_key: str,
        thread_ts: str | None = None,
        broadcast: bool = False,
    ) -> Outcome:
        payload: dict[str, Any] = {
            "channel": channel,
            **body,
            "unfurl_links": False,
            "unfurl_media": False,
            "metadata": {"event_type": METADATA_EVENT, "event_payload": {"delivery_key": delivery_key}},
        }
        if thread_ts:
            payload["thread_ts"] = thread_ts
            payload["reply_broadcast"] = broadcast
        try:
            response = await asyncio.wait_for(
                self._client.post(f"{self._base}/chat.postMessage", json=payload, headers=self._headers),
                self._timeout,
            )
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            return network_error(exc)
        retry_after = parse_retry_after(response.headers.get("retry-after"), utcnow())
        return classify_slack_api(response.status_code, _json(response), response.text, retry_after)

    async def channel_id(self, address: str) -> str | None:
        """A channel id for history look-ups: ids as they are, a member's DM via conversations.open,
        a name via conversations.list."""
        if is_channel_id(address):
            return address
        if is_member_id(address):
            body = await self._call("conversations.open", {"users": address})
            channel = body.get("channel") if body and body.get("ok") else None
            return str(channel["id"]) if isinstance(channel, dict) and channel.get("id") else None
        # A channel name ("#cs-acme"): look it up (needs the channels:read / groups:read scopes).
        name = address.removeprefix("#")
        params: dict[str, Any] = {
            "types": "public_channel,private_channel",
            "exclude_archived": True,
            "limit": 1000,
        }
        for _ in range(HISTORY_PAGES_MAX):
            body = await self._call("conversations.list", params)
            if not body or not body.get("ok"):
                return None
            for channel in body.get("channels") or []:
                if isinstance(channel, dict) and channel.get("name") == name and channel.get("id"):
                    return str(channel["id"])
            cursor = (body.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
            params["cursor"] = cursor
        return None

    async def find(
        self, channel_id: str, delivery_key: str, oldest: datetime, thread_ts: str | None = None
    ) -> Lookup:
        """Whether a message with this delivery key's metadata is in the channel (or thread)."""
        method = "conversations.replies" if thread_ts else "conversations.history"
        params: dict[str, Any] = {
            "channel": channel_id,
            "oldest": f"{oldest.timestamp() - 60:.6f}",
            "include_all_metadata": True,
            "limit": 200,
        }
        if thread_ts:
            params["ts"] = thread_ts
        for _ in range(HISTORY_PAGES_MAX):
            body = await self._call(method, params)
            if not body or not body.get("ok"):
                return Lookup(Found.UNKNOWN, detail=f"{method}: {(body or {}).get('error', 'no answer')}")
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
            params["cursor"] = cursor
        return Lookup(Found.UNKNOWN, detail="history too long to search")

    async def _call(self, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
        try:
            response = await asyncio.wait_for(
                self._client.post(f"{self._base}/{method}", json=params, headers=self._headers), self._timeout
            )
        except (httpx.HTTPError, OSError, TimeoutError):
            return None
        return _json(response)


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


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
