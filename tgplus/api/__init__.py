"""The HTTP service: the original `GET /<description>` call, a JSON API, health, metrics, a page.

    uvicorn tgplus.api:app          # or: tgplus serve;  or: cd tgplus && uvicorn api:app

The model is loaded once at startup. If it cannot be loaded the process still
starts, logs one line saying why, answers /health/ready and predictions with
503, and keeps /health/live at 200 so an orchestrator can tell the two apart.
This package imports the model and the settings only, never training code:

    schemas.py        request and response bodies
    observability.py  JSON log lines and Prometheus metrics, one per request
    state.py          settings, metrics, the loaded model (and its reload), the feedback store
    errors.py         the status and JSON body for each error
    routes.py         the endpoints
    editors.py        editors' endpoints (feedback, deletion, reload) and live quality metrics
    openapi.py        the schema, with the configured limits in it
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "api":
    # `cd tgplus && uvicorn api:app`, the original demo's way: make the package importable
    # and serve the model `make serve` / `python tgplus/training.py` wrote at the top level.
    import os

    _root = Path(__file__).resolve().parents[2]
    sys.path.insert(0, str(_root))
    if (_root / "data" / "model").exists():  # else the bundled model, as `tgplus serve` does
        os.environ.setdefault("TGPLUS_MODEL_PATH", str(_root / "data" / "model"))

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from tgplus import __version__
from tgplus.api.editors import router as editors_router
from tgplus.api.errors import add_error_handlers
from tgplus.api.guard import Guard, OptInCors
from tgplus.api.observability import JsonLines, Metrics, RequestLog, configure_logging
from tgplus.api.openapi import install_openapi
from tgplus.api.routes import WEB, paths_without_get, router
from tgplus.api.state import ServiceState, follow_reloads, reload_on_sighup
from tgplus.config import Settings

__all__ = ["JsonLines", "app", "create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured app; `settings` default to the TGPLUS_* environment, read at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings is None:
            state.settings = Settings()
        configure_logging(state.settings.log_level)
        state.limiter = anyio.CapacityLimiter(2)  # CPU-bound work: more threads only contend
        await state.reload()
        await state.open_store()
        async with follow_reloads(state):
            with reload_on_sighup(state):
                yield
        if state.store is not None:
            state.store.dispose()

    # /docs loads Swagger UI from files the fastapi-offline package ships (served under
    # /static-offline-docs), not from a CDN: it works offline. No /redoc: ReDoc's bundle
    # still fetches its logo from a CDN.
    app = FastAPIOffline(
        title="tgplus",
        version=__version__,
        summary="Tag movies with genres from their description.",
        lifespan=lifespan,
        favicon_url="/favicon.ico",
        redoc_url=None,
    )
    metrics = Metrics()
    # One state object per app; the lifespan fills it in, routes find it on request.app.
    state = ServiceState(settings or Settings.model_construct(), metrics)
    app.state.service = state
    # Outermost first: log every answer, then limits, then CORS (opt-in), then the routes.
    app.add_middleware(OptInCors, state=state)
    app.add_middleware(Guard, state=state)
    app.add_middleware(RequestLog, metrics=metrics)
    app.mount("/static", StaticFiles(directory=WEB), name="static")
    add_error_handlers(app)
    install_openapi(app, state)
    # The routes themselves, not include_router: FastAPI's include_router wraps a router
    # in a matcher that cost the catch-all route ~40 us a request (0.165, measured); the
    # routes hold no per-app state. The editors' first; `router` last, as its
    # `GET /{description}` matches every path.
    app.router.routes.extend(editors_router.routes)
    app.router.routes.extend(router.routes)
    state.paths_without_get = paths_without_get(app.routes)
    return app


app = create_app()
