"""Turning a request body into validated Segment messages, or a 400 that names each problem.

A batch is all or nothing: one bad item rejects the request before anything reaches Kafka,
so a client never has to guess which items of a batch were kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from pydantic import TypeAdapter, ValidationError

from services.ingest.segment import MESSAGE_ADAPTER, SUPPORTED_TYPES, SegmentMessage
from shared.door import DEFAULT_EVENT_WINDOW, EventTimeWindow
from shared.events import utcnow
from shared.http import field_errors, invalid_request, refuse_nul, refuse_times_outside


@dataclass(frozen=True)
class Limits:
    max_event_bytes: int
    max_batch_items: int
    event_window: EventTimeWindow = DEFAULT_EVENT_WINDOW


class ValidatedMessage(NamedTuple):  # one per event: a tuple is the cheapest to build
    raw: dict[str, Any]
    message: SegmentMessage


# A whole batch in one call into pydantic-core: per item, `TypeAdapter.validate_python` costs
# about as much Python around the call as the validation itself. The same schema as
# MESSAGE_ADAPTER's, so the same messages come out.
_BATCH_VALIDATOR = TypeAdapter(list[SegmentMessage]).validator
_TIME: TypeAdapter[datetime] = TypeAdapter(datetime)
# orjson encodes at most 254 levels of nesting, and an envelope holds a message's fields one
# level deeper than the message: a message must encode with two levels to spare (as it does
# inside a batch body), or its envelope could not be written and the request would fail late.
MAX_NESTING = 252
TOO_DEEP = f"is nested too deeply: at most {MAX_NESTING} levels of objects and arrays"


def _encoded_size(raw: dict[str, Any]) -> int | None:
    """The message's size as JSON, or None when it nests deeper than MAX_NESTING."""
    try:
        return len(orjson.dumps([[raw]])) - 4
    except orjson.JSONEncodeError:
        return None


def _encodes(body: Any) -> bool:
    try:
        orjson.dumps(body)
    except orjson.JSONEncodeError:
        return False
    return True


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
    size = _encoded_size(raw) if measure else 0
    if size is None:
        errors.append({"field": field or "body", "message": TOO_DEEP})
        return None
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


def _plainly_inside(value: Any, low: str, high: str) -> bool:
    """True when `value` is certainly within (low, high), judged on its text: comparing aware
    datetimes costs about a microsecond each, three per event. Only ISO times in UTC ("...Z")
    are judged so, to the second, strictly; anything else goes to the exact check."""
    return value is None or (type(value) is str and len(value) >= 20 and value[-1] == "Z"
                             and value[10] == "T" and low < value[:19] < high)


def _refuse_times_outside_window(items: list[ValidatedMessage], limits: Limits,
                                 prefix: str) -> list[ValidatedMessage]:
    received_at = utcnow()
    window = limits.event_window
    bounds = window.bounds(received_at)
    low, high = (bounds[0].strftime("%Y-%m-%dT%H:%M:%S"), bounds[1].strftime("%Y-%m-%dT%H:%M:%S")
                 ) if bounds else ("", "")
    errors: list[dict[str, str]] = []
    for index, (raw, message) in enumerate(items):
        get = raw.get
        if (_plainly_inside(get("timestamp"), low, high) and _plainly_inside(get("sentAt"), low, high)
                and _plainly_inside(get("originalTimestamp"), low, high)):
            continue
        errors.extend(window.errors(message.times(prefix.format(index)), received_at))
    if errors:
        raise invalid_request(errors)
    return items


def validate_single(body: Any, message_type: str, limits: Limits,
                    may_hold_nul: bool = True) -> list[ValidatedMessage]:
    """The message, or a 400 naming each problem. `may_hold_nul`: False when the raw body was
    seen to hold no NUL, so the walk looking for one is skipped."""
    refuse_nul(body, may_hold_nul)  # before the models: a NUL in an id is a 400 too
    errors: list[dict[str, str]] = []
    item = _validate_item(body, "", message_type, limits, errors)
    if errors or item is None:
        raise invalid_request(errors)
    return _refuse_times_outside_window([item], limits, "")


def validate_batch(body: Any, limits: Limits, body_bytes: int | None = None,
                   may_hold_nul: bool = True) -> list[ValidatedMessage]:
    """The batch's messages, or a 400 naming every bad item.

    `body_bytes`: the request's decoded size, when known. A body no larger than the event
    limit cannot hold an oversized event, so its items are not each re-encoded to be measured.
    `may_hold_nul`: as for `validate_single`.
    """
    refuse_nul(body, may_hold_nul)  # before the models: a NUL in an id is a 400 too
    items = _validate_batch_items(body, limits, body_bytes)
    if body.get("sentAt") is not None:  # Segment's clients date the batch itself too
        try:
            sent_at = _TIME.validate_python(body["sentAt"])
        except ValidationError as exc:
            raise invalid_request(field_errors(exc, prefix="sentAt")) from exc
        refuse_times_outside(limits.event_window, {"sentAt": sent_at}, utcnow())
    return _refuse_times_outside_window(items, limits, "batch[{}].")


def _validate_batch_items(body: Any, limits: Limits, body_bytes: int | None
                          ) -> list[ValidatedMessage]:
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
        # An item's own context wins; one that is not an object is left for its model to refuse.
        batch = [{**raw, "context": {**shared_context, **(raw.get("context") or {})}}
                 if isinstance(raw, dict) and isinstance(raw.get("context") or {}, dict) else raw
                 for raw in batch]
    # A small body is not measured item by item, so its nesting is checked whole (items sit two
    # levels into it); one too deep is measured item by item below, which names the item.
    measure = measure or not _encodes(body)
    if all(isinstance(raw, dict) and raw.get("type") in SUPPORTED_TYPES
           and (raw.get("userId") or raw.get("anonymousId"))
           and (not measure or (_encoded_size(raw) or limits.max_event_bytes + 1) <= limits.max_event_bytes)
           for raw in batch):
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
