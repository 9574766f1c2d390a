"""The request bodies ingest's routes document in OpenAPI (see shared.openapi_bodies).

The routes read and validate their bodies themselves (gzip, the memory budget, one 400 naming
every field, signatures over the raw bytes): these only declare them, from the same models.
The help desks' own formats (Zendesk, Intercom) are parsed field by field, with no model to
generate a schema from: their bodies are declared as objects keyed by what marks a ticket event.
"""

from __future__ import annotations

from typing import Any

from services.ingest.helpdesk import generic, intercom, zendesk
from services.ingest.segment import (
    AliasMessage,
    GroupMessage,
    IdentifyMessage,
    PageMessage,
    ScreenMessage,
    SegmentBatch,
    TrackMessage,
    _Message,
)
from shared.openapi_bodies import json_body, request_body, schema_of, with_properties

# Every Segment body may carry its write key (the official Python client sends only this).
WRITE_KEY = {"writeKey": {"type": "string", "description": "the write key, unless sent as Basic auth"}}
_SINGLE_MODELS: dict[str, type[_Message]] = {
    "track": TrackMessage, "identify": IdentifyMessage, "group": GroupMessage, "page": PageMessage,
    "screen": ScreenMessage, "alias": AliasMessage,
}


def segment_single(message_type: str) -> dict[str, Any]:
    """`POST /v1/<type>`: one message; the route sets its `type`, so the body need not."""
    schema = with_properties(schema_of(_SINGLE_MODELS[message_type]), WRITE_KEY, dropped=("type",))
    return request_body(schema, f"One Segment {message_type} call (userId or anonymousId required).")


SEGMENT_BATCH = request_body(with_properties(schema_of(SegmentBatch), WRITE_KEY),
                             " ".join((SegmentBatch.__doc__ or "").split()))
WRITE_KEY_TICKET = request_body(with_properties(schema_of(generic.WebhookTicketEvent), WRITE_KEY),
                                "A ticket event in the generic format, sent with a write key.")
SIGNED_TICKET = json_body(generic.WebhookTicketEvent,
                          "A ticket event in the generic format, signed (X-Churnwatch-Signature).")
ZENDESK_EVENT = request_body(
    {"type": "object", "required": ["type", "id", "detail"], "properties": {
        "type": {"type": "string", "pattern": f"^{zendesk.TICKET_EVENT_PREFIX}"},
        "id": {"type": "string"}, "time": {"type": "string"}, "detail": {"type": "object"},
        "event": {"type": "object"}}},
    "A Zendesk webhook event (signed: X-Zendesk-Webhook-Signature); other than ticket events are ignored.")
INTERCOM_NOTIFICATION = request_body(
    {"type": "object", "required": ["type", "id", "topic", "data"], "properties": {
        "type": {"type": "string", "const": "notification_event"},
        "id": {"type": "string"}, "topic": {"type": "string", "pattern": f"^{intercom.TICKET_TOPIC_PREFIX}"},
        "created_at": {"type": "integer"}, "data": {"type": "object"}}},
    "An Intercom webhook notification (signed: X-Hub-Signature); other than ticket topics are ignored.")
WEBHOOK_BODIES = {"/webhooks/zendesk": ZENDESK_EVENT, "/webhooks/intercom": INTERCOM_NOTIFICATION,
                  "/webhooks/tickets": SIGNED_TICKET}
