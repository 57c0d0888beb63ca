"""The HTTP service: the original `GET /<description>` call, a JSON API, health, metrics, a page.

    uvicorn tgplus.api:app          # or: tgplus serve;  or: cd tgplus && uvicorn api:app

The model is loaded once at startup. If it cannot be loaded the process still
starts, logs one line saying why, answers /health/ready and predictions with
503, and keeps /health/live at 200 so an orchestrator can tell the two apart.
This module imports the model and the settings only, never training code.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, "") and __name__ == "api":
    # `cd tgplus && uvicorn api:app`, the original demo's way: make the package importable
    # and serve the model `make serve` / `python tgplus/training.py` wrote at the top level.
    import os

    _root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(_root))
    os.environ.setdefault("TGPLUS_MODEL_PATH", str(_root / "data" / "model"))

import json
import logging
import re
import signal
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import FastAPI, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, Field, field_validator
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tgplus import __version__
from tgplus.config import Settings
from tgplus.editor_routes import EditorMetrics, editor_routes, record_predictions
from tgplus.errors import InputError, ModelError, StoreError, TgplusError
from tgplus.feedback import FeedbackStore
from tgplus.files import sha256_file
from tgplus.models import Predictor, load_predictor

log = logging.getLogger("tgplus.api")
WEB = Path(__file__).resolve().parent / "web"
T = TypeVar("T")

# A single fast-model prediction costs ~0.1 ms: less than handing it to a
# worker thread. Anything heavier (batches, embedding models) runs in threads.
_INLINE_MAX_TEXTS = 4
# The classic Prometheus text format, which every scraper reads.
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- request and response bodies ---------------------------------------------------------------


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("description is empty; send the movie's plot as text")
    return value


class GenreScoreOut(BaseModel):
    genre: str
    score: float = Field(ge=0.0, le=1.0)


class PredictionOut(BaseModel):
    """The top genre, every genre at or above its threshold, and the top-k with scores."""

    genre: str = Field(description="The top-scored genre.", examples=["Crime"])
    genres: list[str] = Field(description="Genres at or above their threshold (at least one).")
    top: list[GenreScoreOut] = Field(description="The top-k genres, best first.")
    prediction_id: str | None = Field(
        None, description="With TGPLUS_RECORD_PREDICTIONS: the stored prediction's short id."
    )


# JSON Schema for "not blank": any character Python's str.strip() keeps, spelled
# out so that JSON Schema tools (whatever their regex flavour) agree with the
# server; the validators below give the friendlier message.
NOT_BLANK: dict[str, Any] = {
    "minLength": 1,
    "pattern": r"[^\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
}


class PredictRequest(BaseModel):
    description: str = Field(
        examples=["A detective hunts a serial killer."], json_schema_extra=NOT_BLANK
    )
    title: str = Field("", description="The movie's title, if known; it helps a little.")
    top_k: int = Field(3, ge=1, le=20)

    _check = field_validator("description")(_not_blank)


class BatchItem(BaseModel):
    description: str = Field(json_schema_extra=NOT_BLANK)
    title: str = ""

    _check = field_validator("description")(_not_blank)


class BatchRequest(BaseModel):
    descriptions: list[BatchItem | Annotated[str, Field(json_schema_extra=NOT_BLANK)]] = Field(
        min_length=1, description="Descriptions, or objects with description and title."
    )
    top_k: int = Field(3, ge=1, le=20)

    @field_validator("descriptions")
    @classmethod
    def _check_items(cls, items: list[BatchItem | str]) -> list[BatchItem | str]:
        for position, item in enumerate(items):
            if isinstance(item, str) and not item.strip():
                raise ValueError(f"description {position} is empty; send the movie's plot as text")
        return items


class BatchResponse(BaseModel):
    predictions: list[PredictionOut]


class ErrorOut(BaseModel):
    detail: str


class ModelOut(BaseModel):
    id: str = Field(description="The sha256 of the model's metadata.json (which pins its arrays).")
    loaded_at: str = Field(description="When this process loaded the model (UTC).")
    kind: str
    genres: list[str]
    thresholds: list[float]
    trained_at: str | None = None
    training_seconds: float | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    data: list[dict[str, Any]] = Field(default_factory=list)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    versions: dict[str, str] = Field(default_factory=dict)


class Health(BaseModel):
    status: str
    model: str | None = None
    detail: str | None = None


# -- state and metrics -------------------------------------------------------------------------


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "tgplus_requests",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tgplus_request_seconds",
            "Time to answer a request.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.predictions = Counter(
            "tgplus_predictions", "Descriptions tagged.", registry=self.registry
        )
        self.model_loaded = Gauge(
            "tgplus_model_loaded", "1 when a model is loaded and serving.", registry=self.registry
        )


@dataclass
class ServiceState:
    settings: Settings
    metrics: Metrics
    predictor: Predictor | None = None
    model_id: str | None = None
    loaded_at: str | None = None
    load_error: str | None = None
    limiter: anyio.CapacityLimiter | None = None
    # The feedback store: opened at startup when a token is set or predictions are recorded.
    store: FeedbackStore | None = None
    store_ready: bool = False
    store_error: str | None = None
    editor_metrics: EditorMetrics = field(init=False)
    reloading: anyio.Lock | None = None

    def __post_init__(self) -> None:
        self.editor_metrics = EditorMetrics(self.metrics.registry)

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise ModelError(f"model not loaded: {self.load_error or 'still starting'}")
        return self.predictor

    async def reload(self) -> str | None:
        """Load the model at the configured path and swap it in; the reason if it failed.

        The new model is loaded and checked in a worker thread while the old one
        keeps serving; the swap happens on the event loop, between requests.
        """
        if self.reloading is None:
            self.reloading = anyio.Lock()
        async with self.reloading:
            loaded = await anyio.to_thread.run_sync(_load_checked, self.settings.model_path)
            if isinstance(loaded, str):
                self.editor_metrics.reloads.labels("failed").inc()
                if self.predictor is None:
                    self.load_error = loaded
                    self.metrics.model_loaded.set(0)
                return loaded
            predictor, model_id = loaded
            self.predictor, self.model_id, self.load_error = predictor, model_id, None
            self.loaded_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            self.metrics.model_loaded.set(1)
            self.editor_metrics.reloads.labels("ok").inc()
            return None


def _load_checked(path: Path) -> tuple[Predictor, str] | str:
    """The model at `path`, warmed up, with its id; or why it cannot serve."""
    metadata = path / "metadata.json"
    try:
        before = sha256_file(metadata) if metadata.is_file() else None
        predictor = load_predictor(path)
        predictor.predict_one("warm up the model before the first request")
        model_id = sha256_file(metadata)
        if model_id != before:
            raise ModelError(f"{path}: the model changed while it was loading; reload again")
    except (TgplusError, OSError) as error:
        log.error({"event": "model_not_loaded", "path": str(path), "error": str(error)})
        return str(error)
    log.info(
        {
            "event": "model_loaded",
            "path": str(path),
            "id": model_id,
            "kind": predictor.kind,
            "genres": len(predictor.genres),
        }
    )
    return predictor, model_id


async def _open_store(state: ServiceState) -> None:
    """Open and migrate the feedback database if anything here needs it."""
    settings = state.settings
    if settings.api_token is None and not settings.record_predictions:
        return
    try:
        state.store = FeedbackStore(settings.database_url)
        await anyio.to_thread.run_sync(state.store.upgrade)
        state.store_ready = True
    except StoreError as error:
        state.store_error = str(error)
        log.error({"event": "feedback_store_unavailable", "error": str(error)})


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, and the event's fields.

    tgplus.api logs dicts (`log.info({"event": ...})`); other messages become
    {"message": ...}. Collectors can parse every line without a pattern.
    """

    def format(self, record: logging.LogRecord) -> str:
        fields = record.msg if isinstance(record.msg, dict) else {"message": record.getMessage()}
        line = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            **fields,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def _configure_logging(level: str) -> None:
    """Send tgplus's JSON lines to stderr unless the host application set up logging."""
    logger = logging.getLogger("tgplus")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)


# -- one log line and metrics per request ------------------------------------------------------


class RequestLog:
    """Pure ASGI middleware: one JSON log line and metrics per request, never the text."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None)
            if route is None:  # docs and static files have no route template; 404s are unknown
                route = scope["path"] if status not in (404, 405) else "unmatched"
            state = scope.get("state", {})
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(route).observe(seconds)
            record = {
                "event": "request",
                "method": scope["method"],
                "path": route,
                "status": status,
                "ms": round(seconds * 1000, 3),
            }
            if "description_chars" in state:
                record["description_chars"] = state["description_chars"]
            if log.isEnabledFor(logging.INFO):
                # makeRecord + handle: the same record as log.info(), without the
                # stack walk that finds the caller's file and line for every request.
                log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, record, (), None))


# -- the app -----------------------------------------------------------------------------------

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HIGH_ESCAPE = re.compile(rb"%[89A-Fa-f][0-9A-Fa-f]")  # a byte >= 0x80: UTF-8 to check


class BadEncoding(InputError):
    """The request's bytes are not well-formed percent-encoded UTF-8 (400)."""


class TooMuchInput(InputError):
    """More items than the configured limit (413)."""


def _strict_unquote(raw: bytes, what: str) -> None:
    """Refuse percent-encoding that is malformed or does not decode to UTF-8."""
    if _BAD_ESCAPE.search(raw):
        raise BadEncoding(f"{what} has an invalid percent-escape; encode '%' as %25")
    if raw.isascii() and not _HIGH_ESCAPE.search(raw):
        return  # only ASCII once decoded: valid UTF-8 (the common case, checked cheaply)
    try:
        urllib.parse.unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadEncoding(f"{what} is not UTF-8 once percent-decoded; send UTF-8 text") from None


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured app; `settings` default to the TGPLUS_* environment, read at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings is None:
            state.settings = Settings()
        _configure_logging(state.settings.log_level)
        state.limiter = anyio.CapacityLimiter(2)  # CPU-bound work: more threads only contend
        await state.reload()
        await _open_store(state)
        with _reload_on_sighup(state):
            yield
        if state.store is not None:
            state.store.dispose()

    app = FastAPI(
        title="tgplus",
        version=__version__,
        summary="Tag movies with genres from their description.",
        lifespan=lifespan,
    )
    metrics = Metrics()
    # One state object per app, captured by the routes below (a closure is cheaper
    # per request than a FastAPI dependency). The lifespan fills it in.
    state = ServiceState(settings or Settings.model_construct(), metrics)
    app.state.service = state
    app.add_middleware(RequestLog, metrics=metrics)
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document_limits(
                get_openapi(
                    title=app.title, version=app.version, summary=app.summary, routes=app.routes
                ),
                state.settings,
                app.routes,
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(InputError)
    async def input_error(request: Request, error: InputError) -> JSONResponse:
        status = 400 if isinstance(error, BadEncoding) else 422
        if isinstance(error, TooMuchInput):
            status = 413
        return JSONResponse({"detail": str(error)}, status_code=status)

    @app.exception_handler(ModelError)
    async def model_error(request: Request, error: ModelError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    async def run(predictor: Predictor, texts: int, work: Callable[[], T]) -> T:
        """Run `work` inline when it is tiny, else in a worker thread (the loop stays free)."""
        if texts <= _INLINE_MAX_TEXTS and not predictor.model.needs_embeddings:
            return work()
        return await anyio.to_thread.run_sync(work, limiter=state.limiter)

    async def predict_one(
        request: Request, description: str, title: str, top_k: int
    ) -> JSONResponse:
        request.state.description_chars = len(description)
        predictor, model_id = state.require_predictor(), state.model_id or ""
        limit = state.settings.max_description_chars
        prediction = await run(
            predictor,
            1,
            lambda: predictor.predict_one(description, title, top_k=top_k, max_chars=limit),
        )
        state.metrics.predictions.inc()
        body = prediction.as_dict()
        if state.settings.record_predictions:
            ids = await record_predictions(state, model_id, [(description, title, prediction)])
            if ids:
                body["prediction_id"] = ids[0]
        return JSONResponse(body)

    not_loaded: dict[int | str, dict[str, Any]] = {
        503: {"model": ErrorOut, "description": "The model is not loaded."}
    }
    errors: dict[int | str, dict[str, Any]] = {
        400: {"model": ErrorOut, "description": "Malformed percent-encoding."},
        422: {"description": "Empty, too long, or malformed input."},
        **not_loaded,
    }

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(WEB / "index.html", headers=_PAGE_HEADERS)

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:
        return FileResponse(WEB / "favicon.svg", media_type="image/svg+xml")

    @app.get("/health/live", response_model=Health, tags=["health"])
    async def live() -> Health:
        """The process is up (even if the model failed to load)."""
        return Health(status="alive")

    @app.get(
        "/health/ready", response_model=Health, tags=["health"], responses={503: {"model": Health}}
    )
    async def ready() -> Health | JSONResponse:
        """Ready to predict: the model is loaded."""
        if state.predictor is None:
            body = Health(status="not ready", detail=state.load_error or "starting")
            return JSONResponse(body.model_dump(), status_code=503)
        return Health(status="ready", model=state.predictor.kind)

    @app.get("/model", response_model=ModelOut, tags=["model"], responses=not_loaded)
    async def model_info() -> ModelOut:
        """The loaded model's metadata: kind, genres, thresholds, metrics, training data."""
        predictor = state.require_predictor()
        meta = predictor.metadata
        return ModelOut(
            id=state.model_id or "",
            loaded_at=state.loaded_at or "",
            kind=predictor.kind,
            genres=list(predictor.genres),
            thresholds=[float(t) for t in predictor.thresholds],
            trained_at=meta.get("trained_at"),
            training_seconds=meta.get("training_seconds"),
            metrics=meta.get("metrics", {}),
            data=[
                {k: d.get(k) for k in ("path", "sha256", "format", "rows_kept")}
                for d in meta.get("data", [])
            ],
            hyperparameters=meta.get("hyperparameters", {}),
            versions=meta.get("versions", {}),
        )

    @app.get("/metrics", response_class=PlainTextResponse, tags=["health"])
    async def prometheus() -> Response:
        """Prometheus metrics: requests, latency, predictions, model state, editors' verdicts."""
        await state.editor_metrics.refresh(state)
        return PlainTextResponse(generate_latest(state.metrics.registry), media_type=METRICS_TYPE)

    app.include_router(editor_routes(state))

    @app.get("/predict", response_model=PredictionOut, tags=["predict"], responses=errors)
    async def predict_get(
        request: Request,
        description: Annotated[
            str, Query(description="The movie's plot.", json_schema_extra=NOT_BLANK)
        ],
        title: Annotated[str, Query(description="The movie's title, if known.")] = "",
        top_k: Annotated[int, Query(ge=1, le=20)] = 3,
    ) -> JSONResponse:
        """Tag one description (query string)."""
        _strict_unquote(request.scope.get("query_string", b""), "the query string")
        return await predict_one(request, description, title, top_k)

    @app.post("/predict", response_model=PredictionOut, tags=["predict"], responses=errors)
    async def predict_post(request: Request, body: PredictRequest) -> JSONResponse:
        """Tag one description (JSON body)."""
        return await predict_one(request, body.description, body.title, body.top_k)

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        tags=["predict"],
        responses={**errors, 413: {"model": ErrorOut, "description": "Too many items."}},
    )
    async def predict_batch(request: Request, body: BatchRequest) -> JSONResponse:
        """Tag many descriptions at once, answered in the same order."""
        limit = state.settings.max_batch_size
        if len(body.descriptions) > limit:
            raise TooMuchInput(
                f"batch of {len(body.descriptions)} descriptions is over the limit of {limit}; "
                "split it into smaller batches"
            )
        items = body.descriptions
        descriptions = [i if isinstance(i, str) else i.description for i in items]
        titles = ["" if isinstance(i, str) else i.title for i in items]
        request.state.description_chars = sum(map(len, descriptions))
        predictor, model_id = state.require_predictor(), state.model_id or ""
        limit = state.settings.max_description_chars
        predictions = await run(
            predictor,
            len(items),
            lambda: predictor.predict(descriptions, titles, top_k=body.top_k, max_chars=limit),
        )
        state.metrics.predictions.inc(len(items))
        answers = [p.as_dict() for p in predictions]
        if state.settings.record_predictions:
            served = list(zip(descriptions, titles, predictions, strict=True))
            ids = await record_predictions(state, model_id, served)
            for answer, prediction_id in zip(answers, ids or [], strict=False):
                answer["prediction_id"] = prediction_id
        return JSONResponse({"predictions": answers})

    @app.get(
        "/{description:path}", response_model=PredictionOut, tags=["predict"], responses=errors
    )
    async def predict_path(request: Request, description: str) -> JSONResponse:
        """The original demo's call: `GET /<url-encoded description>` -> `{"genre": ...}`."""
        _strict_unquote(request.scope.get("raw_path", b""), "the path")
        return await predict_one(request, description, "", 3)

    return app


@contextmanager
def _reload_on_sighup(state: ServiceState) -> Iterator[None]:
    """`kill -HUP <pid>` reloads the model, when this process runs its loop in the main thread."""
    import asyncio

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        yield  # a test client or an embedding application owns the signals
        return
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[str | None]] = set()

    def reload() -> None:
        task = loop.create_task(state.reload())
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


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
    schema: dict[str, Any], settings: Settings, routes: Sequence[BaseRoute]
) -> dict[str, Any]:
    """Put the configured limits into the OpenAPI schema, so docs and clients know them."""
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


_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

app = create_app()
