"""The OpenAPI schema, with the configured limits written into it so docs and clients know them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute, Mount

from tgplus.api.schemas import NOT_BLANK
from tgplus.api.state import ServiceState


def install_openapi(app: FastAPI, state: ServiceState) -> None:
    """Build the schema on first request, from the settings the app runs with."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document_limits(
                get_openapi(
                    title=app.title, version=app.version, summary=app.summary, routes=app.routes
                ),
                state,
                app.routes,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _reserved_paths(routes: Sequence[BaseRoute]) -> str:
    """A regex of the paths other GET routes own, which `GET /{description}` never sees."""
    owned = []
    for route in routes:
        path = getattr(route, "path", "")
        if isinstance(route, Mount):
            owned.append(path.strip("/").replace(".", r"\.") + "/.*")
        elif "{" not in path and "GET" in (getattr(route, "methods", None) or {"GET"}):
            owned.append(path.strip("/").replace(".", r"\."))
    return "^(" + "|".join(sorted(p for p in owned if p)) + ")$"


def _document_limits(
    schema: dict[str, Any], state: ServiceState, routes: Sequence[BaseRoute]
) -> dict[str, Any]:
    settings = state.settings
    longest = {"maxLength": settings.max_description_chars}
    components = schema.get("components", {}).get("schemas", {})
    for name in ("PredictRequest", "BatchItem"):
        if name in components:
            components[name]["properties"]["description"].update(longest)
            components[name]["properties"]["title"].update(longest)
    if "BatchRequest" in components:
        descriptions = components["BatchRequest"]["properties"]["descriptions"]
        descriptions["maxItems"] = settings.max_batch_size
        for option in descriptions["items"].get("anyOf", []):
            if option.get("type") == "string":
                option.update(longest)
    for path in ("/predict", "/{description}"):
        for parameter in schema["paths"].get(path, {}).get("get", {}).get("parameters", []):
            if parameter["name"] == "title":
                parameter["schema"].update(longest)
            if parameter["name"] == "description":
                parameter["schema"].update(longest, **NOT_BLANK)
                if path == "/{description}":
                    # A description spelled like another endpoint ("model") reaches that
                    # endpoint; say so, so clients (and the fuzz test) use /predict for it.
                    parameter["schema"]["not"] = {"pattern": _reserved_paths(routes)}
    return schema
