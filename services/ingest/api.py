"""Ingest's Segment tracking API routes (tickets live in services/ingest/helpdesk).

Every route answers 200 only after Kafka has acknowledged every event of the request;
while Kafka is unreachable it answers 503, which Segment clients retry. An event whose id
was accepted before (a client retry, by any instance, within the retention window) is
dropped and counted, and the request still answers 200. A source over its rate gets 429.
"""

from __future__ import annotations

import time
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any

import structlog
from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.ingest.admin import build_admin_router
from services.ingest.attribution import Membership, attribute, users_to_look_up
from services.ingest.metrics import (
    DUPLICATES_DROPPED,
    EVENTS_ACCEPTED,
    REJECTED_REQUESTS,
    REQUEST_BYTES,
    UNATTRIBUTED_EVENTS,
    counting_rejections,
)
from services.ingest.rate_limit import RateLimiter, retry_after_header
from services.ingest.segment import derive_message_id, occurred_at, to_envelope
from services.ingest.store import (
    claim_message_ids,
    load_memberships,
    prune_message_ids,
    save_memberships,
)
from services.ingest.validation import Limits, ValidatedMessage, validate_batch, validate_single
from shared.events import Envelope, utcnow
from shared.http import ApiError, parse_json, read_body_limited
from shared.publisher import EventPublisher, Overloaded, PublishFailed
from shared.settings import Settings
from shared.write_keys import key_from_headers, source_for_key

log = structlog.get_logger(__name__)

SUCCESS = {"success": True}
SINGLE_MESSAGE_TYPES = ("track", "identify", "group", "page", "screen", "alias")
# Forgetting old message ids is housekeeping: once per instance every few minutes is plenty.
PRUNE_INTERVAL_SECONDS = 300.0


class IngestApi:
    def __init__(self, settings: Settings, engine: AsyncEngine, publisher: EventPublisher) -> None:
        self.settings = settings
        self.engine = engine
        self.publisher = publisher
        self.limits = Limits(settings.max_event_bytes, settings.max_batch_items)
        self.rate_limiter = RateLimiter(settings.rate_limit_events_per_second,
                                        settings.rate_limit_burst)
        self._last_prune: float | None = None

    async def read_json(self, request: Request) -> Any:
        raw = await read_body_limited(request, self.settings.max_request_bytes)
        if request.headers.get("content-encoding", "").lower() == "gzip":
            raw = self._gunzip(raw)
        REQUEST_BYTES.inc(len(raw))
        return parse_json(raw)

    def _gunzip(self, raw: bytes) -> bytes:
        limit = self.settings.max_request_bytes
        decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            body = decompressor.decompress(raw, limit + 1)
        except zlib.error as exc:
            raise ApiError(400, "invalid_gzip", f"body is not valid gzip: {exc}") from exc
        if len(body) > limit or decompressor.unconsumed_tail:
            raise ApiError(400, "payload_too_large",
                           f"decompressed body exceeds the limit of {limit} bytes")
        return body

    async def authenticate(self, request: Request, body: Any) -> str:
        key = key_from_headers(request)
        if key is None and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
            key = body["writeKey"]
        return await source_for_key(self.engine, key)

    def check_rate(self, source: str, events: int) -> None:
        wait = self.rate_limiter.acquire(source, events)
        if wait > 0:
            raise ApiError(429, "rate_limited",
                           f"source {source!r} is over its limit of "
                           f"{self.settings.rate_limit_events_per_second:g} events/s "
                           f"(burst {self.settings.rate_limit_burst}); nothing was accepted, "
                           "retry after the Retry-After seconds",
                           headers={"Retry-After": retry_after_header(wait)})

    async def accept_messages(self, items: list[ValidatedMessage], source: str) -> None:
        received_at = utcnow()
        messages = [item.message for item in items]
        occurred = [occurred_at(m, received_at) for m in messages]
        known = await load_memberships(self.engine, users_to_look_up(messages))
        accounts, changed = attribute(messages, occurred, known)
        envelopes = [
            to_envelope(
                item.message,
                event_id=item.message.message_id or derive_message_id(item.raw),
                account_id=account,
                source=source,
                received_at=received_at,
            )
            for item, account in zip(items, accounts, strict=True)
        ]
        fresh = await self.publish_new(envelopes, changed)
        counts = Counter((e.type.value, e.account_id is None) for e in fresh)
        for (event_type, unattributed), count in counts.items():
            EVENTS_ACCEPTED.labels(event_type, source).inc(count)
            if unattributed:
                UNATTRIBUTED_EVENTS.labels(event_type).inc(count)

    async def publish_new(self, envelopes: list[Envelope],
                          memberships: Mapping[str, Membership] | None = None) -> list[Envelope]:
        """Publish the envelopes whose id was never accepted before; return those.

        One transaction claims the ids, waits for Kafka's acks, then commits (with the
        memberships the request set). If Kafka fails it rolls back, so the client's retry
        is not mistaken for a duplicate.
        """
        await self.prune_if_due()
        first: dict[str, Envelope] = {}
        for envelope in envelopes:
            first.setdefault(envelope.event_id, envelope)
        async with self.engine.begin() as conn:
            claimed = await claim_message_ids(conn, first.keys())
            fresh = [e for e in first.values() if e.event_id in claimed]
            await self.publish(fresh)
            if memberships:
                await save_memberships(conn, memberships)
        dropped = Counter(e.type.value for e in envelopes)
        dropped.subtract(e.type.value for e in fresh)
        for event_type, count in dropped.items():
            if count > 0:
                DUPLICATES_DROPPED.labels(event_type).inc(count)
        return fresh

    async def prune_if_due(self) -> None:
        now = time.monotonic()
        if self._last_prune is not None and now - self._last_prune < PRUNE_INTERVAL_SECONDS:
            return
        self._last_prune = now
        retention = timedelta(hours=self.settings.message_id_retention_hours)
        forgotten = await prune_message_ids(self.engine, retention)
        if forgotten:
            log.info("message_ids_pruned", count=forgotten)

    async def publish(self, envelopes: list[Envelope]) -> None:
        try:
            await self.publisher.publish(envelopes)
        except Overloaded as exc:
            REJECTED_REQUESTS.labels("overloaded").inc()
            raise ApiError(503, "overloaded", f"{exc}; nothing was accepted, retry shortly",
                           headers={"Retry-After": "1"}) from exc
        except PublishFailed as exc:
            REJECTED_REQUESTS.labels("kafka_unavailable").inc()
            raise ApiError(503, "kafka_unavailable",
                           f"{exc}; nothing was accepted, retry later",
                           headers={"Retry-After": "5"}) from exc


def build_router(api: IngestApi) -> APIRouter:
    router = APIRouter(prefix="/v1")
    router.include_router(build_admin_router(api.settings, api.engine))

    def single_message_route(message_type: str) -> Callable[[Request], Awaitable[dict[str, bool]]]:
        async def receive(request: Request) -> dict[str, bool]:
            with counting_rejections():
                body = await api.read_json(request)
                source = await api.authenticate(request, body)
                items = validate_single(body, message_type, api.limits)
                api.check_rate(source, len(items))
            await api.accept_messages(items, source)
            return SUCCESS

        return receive

    for message_type in SINGLE_MESSAGE_TYPES:
        router.add_api_route(f"/{message_type}", single_message_route(message_type),
                             methods=["POST"], name=message_type)

    @router.post("/batch")
    async def batch(request: Request) -> dict[str, bool]:
        with counting_rejections():
            body = await api.read_json(request)
            source = await api.authenticate(request, body)
            items = validate_batch(body, api.limits)
            api.check_rate(source, len(items))
        await api.accept_messages(items, source)
        return SUCCESS

    return router
