"""Request bodies declared in OpenAPI for routes that read their body themselves.

Many routes parse the raw body on purpose (size limits before reading, gzip, signatures over
the exact bytes, one 400 naming every field, the ingest hot path), so FastAPI sees no body
parameter and documents none; a client generator or a schema fuzzer then never sends one.
These declare the body (`openapi_extra`), with the JSON schema generated from the very model
the handler validates with: one source of truth, the handler's behaviour untouched.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, TypeAdapter

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def schema_of(model: type[BaseModel] | TypeAdapter[Any]) -> dict[str, Any]:
    """The model's JSON schema (validation mode, by alias) with its `$defs` inlined: an
    operation's schema cannot point into the document's root the way pydantic's refs do."""
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    schema = adapter.json_schema(by_alias=True, mode="validation")
    definitions = schema.pop("$defs", {})
    inlined = _inline(schema, definitions, ())
    assert isinstance(inlined, dict)
    return inlined


def _inline(node: Any, definitions: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        name = ref.removeprefix("#/$defs/")
        if name in seen:  # a recursive model: documented one level down as any object
            return {"type": "object"}
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**copy.deepcopy(definitions[name]), **siblings}, definitions, (*seen, name))
    return {key: _inline(value, definitions, seen) for key, value in node.items()}


def with_properties(schema: dict[str, Any], extra: dict[str, Any],
                    dropped: tuple[str, ...] = ()) -> dict[str, Any]:
    """`schema` (an object schema) with more properties, and without those `dropped`: for a body
    that carries transport fields beside the model (`writeKey`) or whose route sets one itself."""
    properties = {k: v for k, v in schema.get("properties", {}).items() if k not in dropped}
    out = {**schema, "properties": {**properties, **extra}}
    required = [name for name in schema.get("required", []) if name not in dropped]
    if required:
        out["required"] = required
    else:
        out.pop("required", None)
    return out


def request_body(schema: dict[str, Any], description: str, media_type: str = JSON,
                 required: bool = True) -> dict[str, Any]:
    """`openapi_extra` for a route: its body of `media_type` matching `schema`."""
    return {"requestBody": {"required": required, "description": description,
                            "content": {media_type: {"schema": schema}}}}


def json_body(model: type[BaseModel] | TypeAdapter[Any], description: str | None = None) -> dict[str, Any]:
    """`openapi_extra` for a route whose JSON body is validated with `model`."""
    text = description or (model.__doc__ if isinstance(model, type) else None) or "JSON body"
    return request_body(schema_of(model), " ".join(text.split()))


def form_body(fields: tuple[str, ...], description: str) -> dict[str, Any]:
    """`openapi_extra` for an HTML form's route: its urlencoded text fields."""
    schema = {"type": "object", "properties": {name: {"type": "string"} for name in fields}}
    return request_body(schema, description, FORM)
