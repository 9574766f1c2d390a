"""Ingest's Segment tracking API routes (tickets live in services/ingest/helpdesk).

Every route answers 200 only after Kafka has acknowledged every event of the request;
while Kafka is unreachable it answers 503, which Segment clients retry. An event whose id
was accepted before (a client retry, by any instance, within the retention window) is
dropped and counted, and the request still answers 200. A write key over its rate gets 429.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

import structlog
from fastapi import APIRouter, Request

from services.ingest import request_bodies
from services.ingest.attribution import attribute, explicit_accounts, users_to_look_up
from services.ingest.budget import MemoryBudget, worst_case_size
from services.ingest.metrics import (
    DUPLICATES_DROPPED,
    EVENTS_ACCEPTED,
    REQUEST_BYTES,
    UNATTRIBUTED_EVENTS,
    counting_rejections,
)
from services.ingest.outage import database_outage_as_503
from services.ingest.rate_limit import rate_limited
from services.ingest.segment import encode_wire, event_id_for, occurred_at, wire_envelope
from services.ingest.store import IngestStore, Rate, RequestTransaction
from services.ingest.validation import Limits, ValidatedMessage, validate_batch, validate_single
from shared.door import may_hold_nul
from shared.events import Envelope, EventType, encode, partition_key_for, utcnow
from shared.http import ApiError, parse_json, read_body_limited
from shared.publisher import EncodedEvent, EventPublisher, Overloaded, PublishFailed
from shared.runtime.backoff import exponential_backoff
from shared.settings import Settings, event_time_window
from shared.topics import Topics
from shared.write_keys import write_key_for_tracking

log = structlog.get_logger(__name__)

SUCCESS = {"success": True}
SINGLE_MESSAGE_TYPES = ("track", "identify", "group", "page", "screen", "alias")
SEGMENT_EVENT_TYPES = (EventType.TRACK, EventType.PAGE, EventType.SCREEN, EventType.IDENTIFY,
                       EventType.GROUP)


class OutgoingEvent(NamedTuple):
    """One event of a request, encoded for Kafka, with what dedupe and metrics need.
    (A tuple: one is made per event, and a frozen dataclass costs several times more.)"""

    event_id: str
    type: str
    account_id: str | None
    encoded: EncodedEvent

    @classmethod
    def of_envelope(cls, envelope: Envelope, topics: Topics) -> OutgoingEvent:
        return cls(envelope.event_id, envelope.type.value, envelope.account_id,
                   EncodedEvent(topics.for_event(envelope.type), envelope.partition_key(),
                                encode(envelope)))


@dataclass(frozen=True)
class ReceivedBody:
    json: Any
    size: int  # bytes after gzip decoding
    may_hold_nul: bool  # False: the raw text certainly holds no NUL (shared.door)


def items_in(body: Any) -> int:
    """How many events a body carries, as counted against the key's rate (before validation)."""
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        return max(1, len(body["batch"]))
    return 1


class IngestApi:
    def __init__(self, settings: Settings, publisher: EventPublisher) -> None:
        self.settings = settings
        self.publisher = publisher
        self.topics = Topics.from_settings(settings)
        # By the wire's type string: no enum lookups per event.
        self.topic_for = {t.value: self.topics.for_event(t) for t in SEGMENT_EVENT_TYPES}
        self.store = IngestStore(settings.database_url,
                                 in_doubt_for=timedelta(seconds=settings.message_id_in_doubt_seconds))
        # Recording the producer's late outcome of publishes answered 503 while in doubt.
        self._settling: set[asyncio.Task[None]] = set()
        self.limits = Limits(settings.max_event_bytes, settings.max_batch_items,
                             event_time_window(settings))
        self.rate = Rate(settings.rate_limit_events_per_second, settings.rate_limit_burst)
        self.bodies = MemoryBudget(settings.max_request_bytes_in_memory)

    async def start(self) -> None:
        await self.store.start()

    async def stop(self) -> None:
        # Outcomes still to record: the producer's flush resolves them (bounded: Kafka may be
        # down), then they are recorded before the database goes.
        if self._settling:
            await self.publisher.flush(self.settings.produce_timeout_seconds)
            if pending := set(self._settling):
                await asyncio.wait(pending, timeout=self.settings.produce_timeout_seconds)
            for task in set(self._settling):
                task.cancel()
        await self.store.stop()

    @asynccontextmanager
    async def holding_body(self, request: Request) -> AsyncIterator[None]:
        """Reserve the request's worst-case size in the memory budget while it is handled."""
        size = worst_case_size(request.headers.get("content-length"),
                               request.headers.get("content-encoding"), self.settings.max_request_bytes)
        with self.bodies.reserve(size):
            yield

    async def read_raw(self, request: Request) -> bytes:
        return await read_body_limited(request, self.settings.max_request_bytes)

    async def read_json(self, request: Request) -> ReceivedBody:
        raw = await self.read_raw(request)
        if request.headers.get("content-encoding", "").lower() == "gzip":
            raw = self._gunzip(raw)
        REQUEST_BYTES.inc(len(raw))
        return ReceivedBody(parse_json(raw), len(raw), may_hold_nul(raw))

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

    async def authorize(self, request: Request, body: Any) -> str:
        """The write key's source; 401 for a missing, unknown or revoked key, 429 over its rate."""
        key = write_key_for_tracking(request, body.get("writeKey") if isinstance(body, dict) else None)
        if not key:
            raise ApiError(401, "missing_write_key",
                           "no write key: send it as the Basic auth username, as a Bearer token, "
                           "or as writeKey in the body")
        admission = await self.store.authorize(key, items_in(body), self.rate)
        if admission.source is None:
            raise ApiError(401, "invalid_write_key", "the write key is unknown or revoked")
        if not admission.allowed:
            raise rate_limited("this write key", admission.wait_seconds, self.rate.per_second,
                               self.rate.burst)
        return admission.source

    async def check_webhook_rate(self, source: str) -> None:
        admission = await self.store.take_tokens(f"webhook:{source}", 1, self.rate)
        if not admission.allowed:
            raise rate_limited(f"the {source} webhook", admission.wait_seconds, self.rate.per_second,
                               self.rate.burst)

    async def accept_messages(self, items: Sequence[ValidatedMessage], authorizing: Awaitable[str],
                              transaction: RequestTransaction) -> None:
        """Publish a request's messages in `transaction` (already open), once `authorizing`
        (the key check, already under way) yields their source; commit after Kafka acked.

        The database round trips overlap where they can: the key check and opening the
        transaction run while the body is validated, the memberships lookup beside the
        claim. The memberships save (only for a request whose group calls change one) runs
        before the publish, never beside it: a failed save fails the request with nothing
        published. A refused key, a failed save, or a publish that failed before any record
        reached the producer, rolls the transaction back: nothing claimed, nothing saved.
        """
        received_at = utcnow()
        messages = [item.message for item in items]
        event_ids = [event_id_for(item.message, item.raw) for item in items]
        explicit = explicit_accounts(messages)
        wanted = users_to_look_up(messages, explicit)
        memberships = asyncio.ensure_future(self.store.load_memberships(wanted)) if wanted else None
        try:
            await transaction.claim(set(event_ids))
            source = await authorizing
            known = await memberships if memberships is not None else {}
            occurred = [occurred_at(m, received_at) for m in messages]
            accounts, changed = attribute(messages, occurred, known, explicit)
            events = [
                self.outgoing(wire_envelope(
                    item.message, event_id=event_id, account_id=account, source=source,
                    received_at=received_at, occurred=at))
                for item, event_id, account, at in zip(items, event_ids, accounts, occurred, strict=True)
            ]
            if changed:
                await transaction.save_memberships(changed)
            fresh = await self.publish_claimed(transaction, events)
            # Committed before the answer: a client's retry, or its next request relying on
            # a membership this one set, must find it, even if this process dies right after.
            await transaction.finish(commit=True)
        finally:
            await transaction.finish(commit=False)  # no-op once committed
            if memberships is not None:
                settle(memberships)
        counts = Counter((e.type, e.account_id is None) for e in fresh)
        for (event_type, unattributed), count in counts.items():
            EVENTS_ACCEPTED.labels(event_type, source).inc(count)
            if unattributed:
                UNATTRIBUTED_EVENTS.labels(event_type).inc(count)

    def outgoing(self, wire: dict[str, Any]) -> OutgoingEvent:
        event_type: str = wire["type"]
        account_id: str | None = wire["account_id"]
        event_id: str = wire["event_id"]
        return OutgoingEvent(event_id, event_type, account_id, EncodedEvent(
            self.topic_for[event_type], partition_key_for(account_id, wire["user_id"], event_id),
            encode_wire(wire)))

    async def publish_new(self, events: Sequence[OutgoingEvent]) -> list[OutgoingEvent]:
        """Publish the events whose id was never accepted before; return those."""
        async with self.store.claiming({e.event_id for e in events}) as claim:
            return await self.publish_claimed(claim, events)

    async def publish_claimed(self, claim: RequestTransaction,
                              events: Sequence[OutgoingEvent]) -> list[OutgoingEvent]:
        """Publish the events whose id this request's transaction claimed (the first of each id).

        The transaction that claimed the ids stays open until Kafka acked, and commits after.
        If the publish fails before any record reached the producer it rolls back, so the
        client's retry is published. If it fails with records handed to the producer (the
        deadline passed, Kafka went away mid-request), those may still be sent: their ids are
        committed "in doubt" (the others released) and the request answers 503; the outcome
        is recorded when the producer reports it. A retry meeting an id still in doubt answers
        503 too, nothing published, until the outcome is known: then a delivered id is
        dropped as a duplicate, a failed one is published.
        """
        if claim.in_doubt:
            raise ApiError(503, "publish_in_doubt",
                           f"{len(claim.in_doubt)} of these events were sent by an earlier request "
                           "that failed, and Kafka has not yet confirmed whether they arrived; "
                           "nothing was accepted, retry later",
                           headers={"Retry-After": "5"})
        if len(claim.claimed) == len(events):
            # The usual case: the claimed ids are among the events', so as many as there are
            # events means every id is distinct and new; no event-by-event sorting out.
            fresh = list(events)
        else:
            first: dict[str, OutgoingEvent] = {}
            for event in events:
                if event.event_id in claim.claimed:
                    first.setdefault(event.event_id, event)
            fresh = list(first.values())
        try:
            await self.publisher.publish_encoded([e.encoded for e in fresh])
        except PublishFailed as exc:
            if not isinstance(exc, Overloaded) and exc.in_doubt:
                await self.keep_in_doubt(claim, fresh, exc.deliveries)
            raise publish_failure(exc) from exc
        if len(fresh) < len(events):
            dropped = Counter(e.type for e in events)
            dropped.subtract(e.type for e in fresh)
            for event_type, count in dropped.items():
                if count > 0:
                    DUPLICATES_DROPPED.labels(event_type).inc(count)
        return fresh

    async def keep_in_doubt(self, claim: RequestTransaction, fresh: Sequence[OutgoingEvent],
                            deliveries: Sequence[asyncio.Future[Any]]) -> None:
        """Commit the claim of the ids whose record the producer may still send (in doubt),
        release the rest, and record each one's outcome once the producer knows it."""
        ids = [e.event_id for e in fresh]
        handed = ids[:len(deliveries)]
        await claim.keep_in_doubt(handed, ids[len(deliveries):])
        await claim.finish(commit=True)
        task = asyncio.create_task(self._settle(handed, list(deliveries)))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(self, ids: list[str], deliveries: list[asyncio.Future[Any]]) -> None:
        await asyncio.wait(deliveries)
        delivered: list[str] = []
        failed: list[str] = []
        for event_id, future in zip(ids, deliveries, strict=True):
            ok = not future.cancelled() and future.exception() is None
            (delivered if ok else failed).append(event_id)
        # The database may be away too: tried again with back-off for as long as the ids stay
        # in doubt (past that a retry may claim them anyway); meanwhile retries answer 503.
        retries = 0
        give_up = asyncio.get_running_loop().time() + self.settings.message_id_in_doubt_seconds
        while True:
            try:
                await self.store.settle_in_doubt(delivered, failed)
            except Exception as exc:
                log.warning("in_doubt_outcome_not_recorded", events=len(ids), error=repr(exc))
                delay = exponential_backoff(retries, 0.5, 30.0)
                if asyncio.get_running_loop().time() + delay > give_up:
                    return
                await asyncio.sleep(delay)
                retries += 1
            else:
                log.info("in_doubt_outcome_recorded", delivered=len(delivered), failed=len(failed))
                return


def publish_failure(exc: PublishFailed) -> ApiError:
    if isinstance(exc, Overloaded):
        return ApiError(503, "overloaded", f"{exc}; nothing was accepted, retry shortly",
                        headers={"Retry-After": "1"})
    if exc.in_doubt:
        return ApiError(503, "kafka_unavailable",
                        f"{exc}; nothing was accepted, but some events may still reach Kafka: "
                        "a retry with the same messageIds is recognised and never publishes "
                        "them twice; retry later", headers={"Retry-After": "5"})
    return ApiError(503, "kafka_unavailable", f"{exc}; nothing was accepted, retry later",
                    headers={"Retry-After": "5"})


def settle(task: asyncio.Future[Any]) -> None:
    """Leave no side task behind: cancel it if still running, or mark its error as seen
    (the request has already failed for an earlier reason)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


async def discard(opening: asyncio.Future[RequestTransaction]) -> None:
    """Roll back (and give back the connection of) a transaction the request never finished."""
    if not opening.done():
        opening.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await opening
        return
    if not opening.cancelled() and opening.exception() is None:
        await opening.result().finish(commit=False)


def build_router(api: IngestApi, admin: APIRouter) -> APIRouter:
    router = APIRouter(prefix="/v1")
    router.include_router(admin)

    async def receive(request: Request, validate: Callable[[ReceivedBody], list[ValidatedMessage]]
                      ) -> dict[str, bool]:
        with counting_rejections(), database_outage_as_503():
            async with api.holding_body(request):
                body = await api.read_json(request)
                # The key check and opening the request's transaction (database round trips)
                # run while the body is validated; a refused key still answers before an
                # invalid body (401/429 before 400).
                authorizing = asyncio.ensure_future(api.authorize(request, body.json))
                opening = asyncio.ensure_future(api.store.begin())
                try:
                    try:
                        items = validate(body)
                    except ApiError:
                        await authorizing
                        raise
                    await api.accept_messages(items, authorizing, await opening)
                finally:
                    settle(authorizing)
                    await discard(opening)
        return SUCCESS

    def single_message_route(message_type: str) -> Callable[[Request], Awaitable[dict[str, bool]]]:
        async def single(request: Request) -> dict[str, bool]:
            return await receive(request, lambda body: validate_single(body.json, message_type,
                                                                      api.limits, body.may_hold_nul))

        return single

    for message_type in SINGLE_MESSAGE_TYPES:
        router.add_api_route(f"/{message_type}", single_message_route(message_type),
                             methods=["POST"], name=message_type,
                             openapi_extra=request_bodies.segment_single(message_type))

    @router.post("/batch", openapi_extra=request_bodies.SEGMENT_BATCH)
    async def batch(request: Request) -> dict[str, bool]:
        return await receive(request, lambda body: validate_batch(body.json, api.limits, body.size,
                                                               body.may_hold_nul))

    return router

