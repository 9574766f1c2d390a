"""Delivering simulated events through Churnwatch's public HTTP interfaces, and nothing else.

- Segment messages go to ingest's `POST /v1/batch` in batches the way the official client
  builds them (at most 100 items and about 475,000 bytes), with the write key as Basic user.
- Ticket updates go to `POST /v1/webhooks/tickets` signed with the generic webhook secret
  when one is given, else to `POST /v1/tickets` with the write key.
- Survey answers go to surveys' `POST /v1/responses`.

Nothing is dropped: 429 and 5xx answers and network errors are retried, honouring
`Retry-After`, until accepted; another 4xx is a bug in what we send and raises. Updates of one
ticket, and revisions of one survey response, are sent one after the other in event-time
order, so an amendment never overtakes what it amends.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any

import httpx
import orjson

from services.ingest.helpdesk.signatures import generic_signature
from shared.runtime.backoff import exponential_backoff
from simulator.model import SimDay, SimEvent

BATCH_MAX_ITEMS = 100
BATCH_MAX_BYTES = 475_000  # the official Python client's limit, under ingest's 500 KB
EVENT_MAX_BYTES = 32 << 10  # the official Python client's limit, as ingest's
RETRYABLE = frozenset({429, 500, 502, 503, 504})
BACKOFF_START, BACKOFF_MAX = 0.25, 10.0


class DeliveryError(RuntimeError):
    """A request Churnwatch refused for good (a 4xx other than 429), or that never got through."""


@dataclass(frozen=True)
class Endpoints:
    ingest_url: str
    surveys_url: str
    write_key: str
    # With a secret, tickets are signed webhook deliveries; without, write-key posts.
    tickets_webhook_secret: str | None = None


@dataclass
class SendStats:
    segment_messages: int = 0
    batches: int = 0
    tickets: int = 0
    survey_responses: int = 0
    retries: Counter[int] = field(default_factory=Counter)  # by status; 0 = network error

    @property
    def events(self) -> int:
        return self.segment_messages + self.tickets + self.survey_responses


# Called once per accepted request with what it carried and when it was sent and accepted
# (perf_counter seconds): benchmarks measure latency from here.
RequestObserver = Callable[[str, Sequence[dict[str, Any]], float, float], None]


def segment_batches(messages: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Messages grouped as the official client does: ≤ 100 items and ≤ 475,000 bytes a batch."""
    batches: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for message in messages:
        item_size = len(orjson.dumps(message)) + 1
        if item_size > EVENT_MAX_BYTES:
            raise ValueError(f"message {message.get('messageId')} is {item_size} bytes, over 32 KB")
        if current and (len(current) >= BATCH_MAX_ITEMS or size + item_size > BATCH_MAX_BYTES):
            batches.append(current)
            current, size = [], 0
        current.append(message)
        size += item_size
    if current:
        batches.append(current)
    return batches


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def ticket_signature_headers(secret: str, body: bytes, now: datetime | None = None) -> dict[str, str]:
    """The generic ticket webhook's headers: a fresh timestamp, signed with the body.

    Made anew for every attempt, so a delivery retried for minutes is never refused as stale.
    """
    timestamp = str(int((now or datetime.now(UTC)).timestamp()))
    return {"X-Churnwatch-Signature-Timestamp": timestamp,
            "X-Churnwatch-Signature": generic_signature(secret, timestamp, body)}


def _ordering_key(event: SimEvent) -> str:
    if event.channel == "ticket":
        return f"ticket:{event.body['ticket_id']}"
    return f"survey:{event.body['response_id']}"


class Sender:
    def __init__(self, endpoints: Endpoints, client: httpx.AsyncClient, *, concurrency: int = 8,
                 give_up_after: float = 600.0, observer: RequestObserver | None = None) -> None:
        self.endpoints = endpoints
        self.client = client
        self.stats = SendStats()
        self._slots = asyncio.Semaphore(concurrency)
        self._give_up_after = give_up_after
        self._observer = observer

    async def send(self, events: Sequence[SimEvent]) -> None:
        """Deliver every event; returns once all were accepted."""
        work: list[Awaitable[None]] = [
            self._send_batch(batch)
            for batch in segment_batches(e.body for e in events if e.channel == "segment")]
        chains: dict[str, list[SimEvent]] = defaultdict(list)
        for event in events:
            if event.channel != "segment":
                chains[_ordering_key(event)].append(event)
        work += [self._send_chain(sorted(chain, key=lambda e: (e.at, e.sequence)))
                 for chain in chains.values()]
        await asyncio.gather(*work)

    async def _send_batch(self, batch: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"batch": batch, "sentAt": datetime.now(UTC).isoformat()})
        await self._post("segment", f"{self.endpoints.ingest_url}/v1/batch", body, batch, auth=True)
        self.stats.segment_messages += len(batch)
        self.stats.batches += 1

    async def _send_chain(self, chain: list[SimEvent]) -> None:
        for event in chain:
            body = orjson.dumps(event.body)
            if event.channel == "survey":
                await self._post("survey", f"{self.endpoints.surveys_url}/v1/responses", body,
                                 [event.body], auth=True)
                self.stats.survey_responses += 1
            elif (secret := self.endpoints.tickets_webhook_secret) is not None:
                await self._post("ticket", f"{self.endpoints.ingest_url}/v1/webhooks/tickets", body,
                                 [event.body], sign=partial(ticket_signature_headers, secret, body))
                self.stats.tickets += 1
            else:
                await self._post("ticket", f"{self.endpoints.ingest_url}/v1/tickets", body,
                                 [event.body], auth=True)
                self.stats.tickets += 1

    async def _post(self, kind: str, url: str, body: bytes, items: Sequence[dict[str, Any]], *,
                    auth: bool = False, sign: Callable[[], dict[str, str]] | None = None) -> None:
        basic = httpx.BasicAuth(self.endpoints.write_key, "") if auth else None
        deadline = time.monotonic() + self._give_up_after
        retries = 0
        async with self._slots:
            while True:
                sent = time.perf_counter()
                request_headers = {"Content-Type": "application/json", **(sign() if sign else {})}
                try:
                    response = await self.client.post(url, content=body, headers=request_headers,
                                                      auth=basic or httpx.USE_CLIENT_DEFAULT)
                except httpx.TransportError as exc:
                    status, wait, detail = 0, None, repr(exc)
                else:
                    if response.is_success:
                        if self._observer is not None:
                            self._observer(kind, items, sent, time.perf_counter())
                        return
                    status, detail = response.status_code, response.text[:500]
                    if status not in RETRYABLE:
                        raise DeliveryError(f"{url} answered {status}: {detail}")
                    wait = retry_after_seconds(response.headers.get("retry-after"))
                self.stats.retries[status] += 1
                pause = exponential_backoff(retries, BACKOFF_START, BACKOFF_MAX) if wait is None else wait
                if time.monotonic() + pause > deadline:
                    raise DeliveryError(f"{url} still failing after {self._give_up_after:.0f}s "
                                        f"(last: {status or 'network error'} {detail})")
                await asyncio.sleep(pause)
                retries += 1


DayCallback = Callable[[SimDay], Awaitable[None] | None]


async def stream(days: Iterable[SimDay], sender: Sender, *, pace: float | None,
                 slices_per_day: int = 4, on_day: DayCallback | None = None) -> None:
    """Send day after day: as fast as accepted (`pace=None`), or `pace` simulated days per second.

    Paced, each day is sent in `slices_per_day` parts at the wall-clock moment its event time
    maps to, so load arrives the way the day unfolds; a slice that is late is sent at once.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    for day in days:
        if pace is None:
            await sender.send(day.events)
        else:
            slices: list[list[SimEvent]] = [[] for _ in range(slices_per_day)]
            for event in day.events:
                seconds = event.at.hour * 3600 + event.at.minute * 60 + event.at.second
                slices[min(slices_per_day - 1, seconds * slices_per_day // 86_400)].append(event)
            for number, part in enumerate(slices):
                due = started + (day.index + number / slices_per_day) / pace
                await asyncio.sleep(max(0.0, due - loop.time()))
                await sender.send(part)
        if on_day is not None:
            outcome = on_day(day)
            if outcome is not None:
                await outcome
