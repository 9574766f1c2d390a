"""Every route of a service app as OpenAPI, the ones kept out of its published document too.

The published documents leave out the HTML pages (survey answers, unsubscribes, alert links,
the console's forms: a browser posts them, no API client does); the fuzz suite and the
request-body test cover them as well, so they are documented here with the rest.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts

from shared.settings import Settings

SERVICES = ("ingest", "surveys", "scoring", "alerts", "console")
WRITE_METHODS = ("POST", "PUT", "PATCH")


def service_app(service: str, settings: Settings) -> FastAPI:
    app: FastAPI = importlib.import_module(f"services.{service}.app").create_app(settings)
    return app


def _api_routes(app: FastAPI) -> list[RouteContext]:
    return [c for c in iter_route_contexts(app.routes) if isinstance(c.original_route, APIRoute)]


def _shown(context: RouteContext) -> RouteContext:
    """The same route, included in the schema (copies: the app is left as it was)."""
    effective = context._route_context
    if effective is None:
        route = copy.copy(context.route)
        route.include_in_schema = True  # type: ignore[attr-defined]
        return RouteContext(route)
    if effective.starlette_route is not None:
        shown = copy.copy(effective.starlette_route)
        shown.include_in_schema = True  # type: ignore[attr-defined]
        return RouteContext(context.route, dataclasses.replace(effective, starlette_route=shown))
    return RouteContext(context.route, dataclasses.replace(effective, include_in_schema=True))


def every_route_schema(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI with its hidden routes included."""
    routes = [c if c.include_in_schema else _shown(c) for c in _api_routes(app)]
    return get_openapi(title=app.title, version=app.version, routes=routes)


def write_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route that takes a body, published or not."""
    return sorted((method, context.path_format or "") for context in _api_routes(app)
                  for method in context.methods or () if method in WRITE_METHODS)
