"""The Segment HTTP Tracking API message formats, and their translation to envelopes.

Pure: no I/O here, so every rule about what a client may send is unit-testable.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from shared.events import SCHEMA_VERSION, Envelope, EventType

MAX_ID_LENGTH = 200


class _Message(BaseModel):
    # Fields Churnwatch does not read (channel, version, ...) are ignored, not kept.
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    user_id: str | None = Field(default=None, alias="userId", max_length=MAX_ID_LENGTH)
    anonymous_id: str | None = Field(default=None, alias="anonymousId", max_length=MAX_ID_LENGTH)
    message_id: str | None = Field(default=None, alias="messageId", min_length=1, max_length=100)
    timestamp: datetime | None = None
    # Not read, but parsed so that the event-time window (shared.door) covers every time sent.
    sent_at: datetime | None = Field(default=None, alias="sentAt")
    original_timestamp: datetime | None = Field(default=None, alias="originalTimestamp")
    context: dict[str, Any] = Field(default_factory=dict)
    integrations: dict[str, Any] = Field(default_factory=dict)

    def times(self, prefix: str) -> dict[str, datetime | None]:
        """The message's times by the field names a 400 gives them."""
        return {f"{prefix}timestamp": self.timestamp, f"{prefix}sentAt": self.sent_at,
                f"{prefix}originalTimestamp": self.original_timestamp}

    def context_group_id(self) -> str | None:
        value = self.context.get("groupId")
        return str(value) if value not in (None, "") else None


class TrackMessage(_Message):
    type: Literal["track"]
    event: str = Field(min_length=1, max_length=500)
    properties: dict[str, Any] = Field(default_factory=dict)


class PageMessage(_Message):
    type: Literal["page"]
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class ScreenMessage(_Message):
    type: Literal["screen"]
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class IdentifyMessage(_Message):
    type: Literal["identify"]
    traits: dict[str, Any] = Field(default_factory=dict)


class GroupMessage(_Message):
    type: Literal["group"]
    group_id: str = Field(alias="groupId", min_length=1, max_length=MAX_ID_LENGTH)
    traits: dict[str, Any] = Field(default_factory=dict)


class AliasMessage(_Message):
    """Segment `alias`: `previousId` (an earlier user or anonymous id) is now `userId`."""

    type: Literal["alias"]
    previous_id: str = Field(alias="previousId", min_length=1, max_length=MAX_ID_LENGTH)

    @model_validator(mode="after")
    def _names_the_user(self) -> AliasMessage:
        if not self.user_id:
            raise ValueError("userId is required on alias")
        return self


AnyMessage = (TrackMessage | PageMessage | ScreenMessage | IdentifyMessage | GroupMessage
              | AliasMessage)
SegmentMessage = Annotated[AnyMessage, Field(discriminator="type")]
# Churnwatch has no alias event: an alias travels as an identify whose only trait says so.
ALIAS_TRAIT = "$alias_of"
MESSAGE_ADAPTER: TypeAdapter[SegmentMessage] = TypeAdapter(SegmentMessage)
SUPPORTED_TYPES = ("track", "page", "screen", "identify", "group", "alias")


class SegmentBatch(BaseModel):
    """The `/v1/batch` body as the API documents it; requests are validated item by item in
    services.ingest.validation (one 400 naming every bad item), through the same message models."""

    batch: list[SegmentMessage]
    sent_at: datetime | None = Field(default=None, alias="sentAt")
    context: dict[str, Any] = Field(default_factory=dict)


def derive_message_id(raw: dict[str, Any]) -> str:
    """An idempotency key from a message's content (minus transport fields), so a client that
    retries the same message gets the same key and the event is not counted twice.

    Only sound for a message carrying its own `timestamp` (see `event_id_for`).
    """
    content = {k: v for k, v in raw.items() if k not in ("sentAt", "writeKey", "messageId")}
    digest = hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return f"derived-{digest[:40]}"


def event_id_for(message: _Message, raw: dict[str, Any]) -> str:
    """The event id of a message: its `messageId`; else derived from its content when it
    carries its own `timestamp`; else a fresh id.

    Without a timestamp, identical content sent twice is two events that happened at
    different times (two clicks of the same button), not a retry: deriving would drop the
    second. Such a message's retry cannot be told from a new event, so it may be counted
    twice; a client that needs exactly-once sends `messageId` (every Segment library does).
    """
    if message.message_id:
        return message.message_id
    if message.timestamp is not None:
        return derive_message_id(raw)
    return f"generated-{uuid.uuid4().hex}"


def _as_utc(moment: datetime | None, fallback: datetime) -> datetime:
    if moment is None:
        return fallback
    if moment.tzinfo is None:  # Segment treats a timestamp without zone as UTC
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def occurred_at(message: _Message, received_at: datetime) -> datetime:
    """Event time: the client's `timestamp`, or when we received it if the client sent none."""
    return _as_utc(message.timestamp, received_at)


def explicit_account(message: AnyMessage) -> str | None:
    """The account a message names itself: its group, `context.groupId`, or an `account_id`."""
    if isinstance(message, GroupMessage):
        return message.group_id
    if group := message.context_group_id():
        return group
    if isinstance(message, AliasMessage):
        return None
    bag = message.traits if isinstance(message, IdentifyMessage) else message.properties
    account = bag.get("account_id")
    return str(account) if account not in (None, "") else None


def wire_envelope(
    message: AnyMessage,
    *,
    event_id: str,
    account_id: str | None,
    source: str,
    received_at: datetime,
    occurred: datetime,
) -> dict[str, Any]:
    """The envelope of a validated message, as the plain dict that goes on the wire.

    The hot path: a batch item becomes one dict here and is encoded by orjson straight away,
    with no second model per event. `to_envelope` reads it back as the `Envelope` contract
    (tests check the two agree).
    """
    payload: dict[str, Any]
    if isinstance(message, TrackMessage):
        event_type = EventType.TRACK
        payload = {"event": message.event, "properties": message.properties,
                   "anonymous_id": message.anonymous_id}
    elif isinstance(message, PageMessage | ScreenMessage):
        is_page = isinstance(message, PageMessage)
        event_type = EventType.PAGE if is_page else EventType.SCREEN
        properties = message.properties
        if message.name and "name" not in properties:
            properties = {**properties, "name": message.name}
        payload = {"event": "Page Viewed" if is_page else "Screen Viewed", "properties": properties,
                   "anonymous_id": message.anonymous_id}
    elif isinstance(message, GroupMessage):
        event_type = EventType.GROUP
        payload = {"traits": message.traits, "group_id": message.group_id,
                   "anonymous_id": message.anonymous_id}
    elif isinstance(message, AliasMessage):
        event_type = EventType.IDENTIFY
        payload = {"traits": {ALIAS_TRAIT: message.previous_id}, "group_id": None,
                   "anonymous_id": message.anonymous_id}
    else:
        event_type = EventType.IDENTIFY
        payload = {"traits": message.traits, "group_id": None, "anonymous_id": message.anonymous_id}
    return {
        "schema_version": SCHEMA_VERSION,
        "event_id": event_id,
        "type": event_type.value,
        "account_id": account_id,
        "user_id": message.user_id or None,
        "occurred_at": occurred,
        "received_at": received_at,
        "source": source,
        "payload": payload,
    }


def encode_wire(wire: dict[str, Any]) -> bytes:
    """The same bytes `shared.events.encode` gives for the equivalent `Envelope`."""
    return orjson.dumps(wire, option=orjson.OPT_UTC_Z)


def to_envelope(message: AnyMessage, *, event_id: str, account_id: str | None, source: str,
                received_at: datetime) -> Envelope:
    """The message's envelope as the `Envelope` model (for tests and tools; not the hot path)."""
    return Envelope.model_validate(wire_envelope(
        message, event_id=event_id, account_id=account_id, source=source,
        received_at=received_at, occurred=occurred_at(message, received_at)))
