"""Helpers for the surveys tests: a clock, a real SMTP server, events onto Kafka, waiting."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.local.processes import free_port
from services.surveys.store import contacts as contact_store
from shared.events import Envelope, EventType
from shared.publisher import EventPublisher
from shared.settings import Settings
from tests.support.waiting import eventually

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LINK_SECRET = "test-link-secret-long-enough-for-hs256"


class FakeClock:
    """The "now" of every scheduling decision; tests move it instead of sleeping."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


async def wait_until(condition: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> None:
    await eventually(condition, what, within=timeout)


async def wait_ready(client: httpx.AsyncClient) -> None:
    async def ready() -> bool:
        return (await client.get("/readyz")).status_code == 200
    await wait_until(ready, 30.0, "the service to be ready (consumer joined)")


@dataclass
class ReceivedEmail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, content_type: str) -> str:
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                content: str = part.get_content()
                return content
        raise AssertionError(f"no {content_type} part")


@dataclass
class _Handler:
    received: list[ReceivedEmail] = field(default_factory=list)
    rejections: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            if self.rejections:
                return f"{self.rejections.pop(0)} refused by the test"
            message = email.message_from_bytes(envelope.content, policy=email.policy.default)
            assert isinstance(message, EmailMessage)
            self.received.append(ReceivedEmail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SmtpServer:
    """A real aiosmtpd server on 127.0.0.1 in its own thread, stopped on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self.handler = _Handler()
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @property
    def received(self) -> list[ReceivedEmail]:
        with self.handler.lock:
            return list(self.handler.received)

    def reject_next(self, code: int, times: int = 1) -> None:
        with self.handler.lock:
            self.handler.rejections.extend([code] * times)

    async def __aenter__(self) -> SmtpServer:
        await asyncio.to_thread(self._controller.start)
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self._controller.stop)


def event(event_type: EventType, event_id: str, *, account_id: str | None = None,
          user_id: str | None = None, occurred_at: datetime | None = None,
          payload: dict[str, Any] | None = None) -> Envelope:
    occurred = occurred_at or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return Envelope(event_id=event_id, type=event_type, account_id=account_id, user_id=user_id,
                    occurred_at=occurred, received_at=occurred, source="test", payload=payload or {})


def identify(user_id: str, *, account_id: str | None = None, occurred_at: datetime | None = None,
             **traits: Any) -> Envelope:
    return event(EventType.IDENTIFY, f"identify-{user_id}-{sorted(traits.items())}", user_id=user_id,
                 account_id=account_id, occurred_at=occurred_at, payload={"traits": traits})


def group(user_id: str | None, account_id: str, *, occurred_at: datetime | None = None,
          **traits: Any) -> Envelope:
    return event(EventType.GROUP, f"group-{user_id}-{account_id}-{sorted(traits.items())}",
                 user_id=user_id, account_id=account_id, occurred_at=occurred_at,
                 payload={"traits": traits, "group_id": account_id})


def ticket(ticket_id: str, status: str, *, account_id: str | None, user_id: str | None = None,
           requester_email: str | None = None, occurred_at: datetime | None = None) -> Envelope:
    return event(EventType.TICKET, f"ticket-{ticket_id}-{status}", account_id=account_id,
                 user_id=user_id, occurred_at=occurred_at,
                 payload={"ticket_id": ticket_id, "status": status, "requester_email": requester_email,
                          "subject": "Export fails"})


async def publish(settings: Settings, *envelopes: Envelope) -> None:
    publisher = EventPublisher(settings, "test")
    await publisher.start()
    try:
        await publisher.publish(list(envelopes))
    finally:
        await publisher.stop()


async def contacts_known(engine: AsyncEngine, *user_ids: str) -> bool:
    """Every user has a contact with an email and at least one account (traits are consumed
    from several partitions, so identify and group calls land in any order)."""
    async with engine.connect() as conn:
        memberships = await contact_store.memberships_of(conn, set(user_ids))
        for user_id in user_ids:
            contact = await contact_store.load_contact(conn, user_id)
            if contact is None or contact.email is None or not memberships.get(user_id):
                return False
    return True
