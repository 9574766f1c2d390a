"""Every POST/PUT route of every service declares its request body in OpenAPI, so a client
generator or a schema fuzzer (tests/fuzz/test_schemathesis.py) reaches its parser."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from shared.settings import Settings
from tests.fuzz.schemas import SERVICES, every_route_schema, service_app, write_routes

# Building an app opens nothing (the lifespan does): no broker or database needed here.
SETTINGS = Settings(database_url="postgresql+asyncpg://u:p@127.0.0.1:9/none",
                    kafka_bootstrap_servers="127.0.0.1:9",
                    survey_link_secret=SecretStr("link-secret-for-the-schema"))


@pytest.mark.parametrize("service", SERVICES)
def test_every_post_and_put_route_declares_its_request_body(service: str) -> None:
    app = service_app(service, SETTINGS)
    schema = every_route_schema(app)
    routes = write_routes(app)
    assert routes, f"{service} has no POST/PUT route: the walk found nothing"
    undeclared = [f"{method} {path}" for method, path in routes
                  if "requestBody" not in schema["paths"][path][method.lower()]]
    assert undeclared == []
    for method, path in routes:
        content = schema["paths"][path][method.lower()]["requestBody"]["content"]
        assert content and all(media["schema"] for media in content.values()), (method, path)


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "console"])
def test_the_published_document_declares_the_bodies_too(service: str) -> None:
    """What /openapi.json serves (the console serves none: it is pages only)."""
    app = service_app(service, SETTINGS)
    published = app.openapi()
    operations = [(method, path, op) for path, item in published["paths"].items()
                  for method, op in item.items() if method.upper() in ("POST", "PUT", "PATCH")]
    assert operations
    assert [f"{m.upper()} {p}" for m, p, op in operations if "requestBody" not in op] == []


def test_segment_bodies_are_generated_from_the_message_models() -> None:
    """One source of truth: the documented fields and limits are the models' own."""
    paths = service_app("ingest", SETTINGS).openapi()["paths"]
    track = paths["/v1/track"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert track["required"] == ["event"]  # `type` is set by the route, not required of the body
    assert track["properties"]["event"]["maxLength"] == 500
    assert {"userId", "anonymousId", "messageId", "timestamp", "properties", "writeKey"} <= set(
        track["properties"])
    batch = paths["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    items = batch["properties"]["batch"]["items"]
    assert {m["properties"]["type"]["const"] for m in items["oneOf"]} == {
        "track", "identify", "group", "page", "screen", "alias"}
    assert "$ref" not in str(batch)  # inlined: an operation's schema cannot point into pydantic's $defs
