"""Turning a request body into validated Segment messages, or a 400 that names each problem.

A batch is all or nothing: one bad item rejects the request before anything reaches Kafka,
so a client never has to guess which items of a batch were kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from pydantic import TypeAdapter, ValidationError

from services.ingest.segment import MESSAGE_ADAPTER, SUPPORTED_TYPES, SegmentMessage
from shared.http import field_errors, invalid_request


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int
    max_batch_items: int


class ValidatedMessage(NamedTuple):  # one per event: a tuple is the cheapest to build
    raw: dict[str, Any]
    message: SegmentMessage


# A whole batch in one call into pydantic-core: per item, `TypeAdapter.validate_python` costs
# about as much Python around the call as the validation itself. The same schema as
# MESSAGE_ADAPTER's, so the same messages come out.
_BATCH_VALIDATOR = TypeAdapter(list[SegmentMessage]).validator


def _validate_item(raw: Any, field: str, forced_type: str | None, limits: Limits,
                   errors: list[dict[str, str]], measure: bool = True) -> ValidatedMessage | None:
    if not isinstance(raw, dict):
        errors.append({"field": field or "body", "message": "must be a JSON object"})
        return None
    if forced_type is not None:
        raw = {**raw, "type": forced_type}
    elif raw.get("type") not in SUPPORTED_TYPES:
        errors.append({"field": f"{field}.type" if field else "type",
                       "message": f"must be one of {', '.join(SUPPORTED_TYPES)}"})
        return None
    size = len(orjson.dumps(raw)) if measure else 0
    if size > limits.max_event_bytes:
        errors.append({"field": field or "body",
                       "message": f"event is {size} bytes; the limit is {limits.max_event_bytes}"})
        return None
    # Checked here rather than in the models (a Python validator per message costs on the hot
    # path): every message reaches the models through this function.
    someone = raw.get("userId") or raw.get("anonymousId")
    if not someone:
        errors.append({"field": f"{field}.userId" if field else "userId",
                       "message": "userId or anonymousId is required"})
    try:
        message = MESSAGE_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        errors.extend(field_errors(exc, prefix=field, union_tag=raw["type"]))
        return None
    return ValidatedMessage(raw=raw, message=message) if someone else None


def validate_single(body: Any, message_type: str, limits: Limits) -> list[ValidatedMessage]:
    errors: list[dict[str, str]] = []
    item = _validate_item(body, "", message_type, limits, errors)
    if errors or item is None:
        raise invalid_request(errors)
    return [item]


def validate_batch(body: Any, limits: Limits, body_bytes: int | None = None) -> list[ValidatedMessage]:
    """The batch's messages, or a 400 naming every bad item.

    `body_bytes`: the request's decoded size, when known. A body no larger than the event
    limit cannot hold an oversized event, so its items are not each re-encoded to be measured.
    """
    if not isinstance(body, dict):
        raise invalid_request([{"field": "body", "message": "must be a JSON object with a batch array"}])
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise invalid_request([{"field": "batch", "message": "must be an array of messages"}])
    if len(batch) > limits.max_batch_items:
        raise invalid_request([{"field": "batch",
                        "message": f"{len(batch)} items; the limit is {limits.max_batch_items}"}])
    # Batch-level context applies to every item unless the item sets its own.
    shared_context = body.get("context") if isinstance(body.get("context"), dict) else None
    measure = body_bytes is None or body_bytes > limits.max_event_bytes
    if shared_context:
        batch = [{**raw, "context": {**shared_context, **(raw.get("context") or {})}}
                 if isinstance(raw, dict) else raw for raw in batch]
    if all(isinstance(raw, dict) and raw.get("type") in SUPPORTED_TYPES
           and (raw.get("userId") or raw.get("anonymousId"))
           and (not measure or len(orjson.dumps(raw)) <= limits.max_event_bytes) for raw in batch):
        # The common case, a batch that passes the checks `_validate_item` makes before its
        # model: validated in one call. Any error, and the per-item path below runs to name
        # every problem exactly as it always does.
        try:
            messages = _BATCH_VALIDATOR.validate_python(batch)
        except ValidationError:
            pass
        else:
            return list(map(ValidatedMessage, batch, messages))
    errors: list[dict[str, str]] = []
    items: list[ValidatedMessage] = []
    for index, raw in enumerate(batch):
        item = _validate_item(raw, f"batch[{index}]", None, limits, errors, measure)
        if item is not None:
            items.append(item)
    if errors:
        raise invalid_request(errors)
    return items
