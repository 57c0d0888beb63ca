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
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

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
from tgplus.errors import InputError, ModelError, TgplusError
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


class WordWeightOut(BaseModel):
    text: str = Field(description="The word as sent.", examples=["gangster"])
    start: int = Field(ge=0, description="Offset of its first character in the field as sent.")
    end: int = Field(ge=0, description="Offset just after its last character.")
    weight: float = Field(description="Signed share of the genre's raw score due to this word.")
    field: Literal["description", "title"]


class GenreScoreOut(BaseModel):
    genre: str
    score: float = Field(ge=0.0, le=1.0, description="Calibrated probability of the genre.")
    explanation: list[WordWeightOut] | None = Field(
        None, description="With explain=true: the words that raised or lowered the score."
    )


class PredictionOut(BaseModel):
    """The top genre, every genre at or above its threshold, and the top-k with scores."""

    genre: str = Field(description="The top-scored genre.", examples=["Crime"])
    genres: list[str] = Field(description="Genres at or above their threshold (at least one).")
    top: list[GenreScoreOut] = Field(description="The top-k genres, best first.")
    confidence: float = Field(
        ge=0.0, le=1.0, description="Calibrated probability that the top genre is right."
    )
    confident: bool | None = Field(
        description="Confidence reaches the threshold set for the model's target precision "
        "(null for models saved without calibration)."
    )
    recall_target: float | None = Field(None, description="The recall target asked for.")
    genre_set: list[str] | None = Field(
        None, description="With recall_target: genres expected to hold that share of the true."
    )
    explanation_method: Literal["exact", "exact-parts-only", "none"] | None = Field(
        None,
        description="With explain=true: exact (every part of the model), exact-parts-only "
        "(the embedding parts of `accurate` not attributed) or none.",
    )


# JSON Schema for "not blank": any character Python's str.strip() keeps, spelled
# out so that JSON Schema tools (whatever their regex flavour) agree with the
# server; the validators below give the friendlier message.
NOT_BLANK: dict[str, Any] = {
    "minLength": 1,
    "pattern": r"[^\s\u001c-\u001f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]",
}


RecallTarget = Annotated[
    float | None,
    Field(gt=0.0, lt=1.0, description="Also return the genre set expected to hold this share "
          "of the movie's genres (conformal risk control), e.g. 0.9."),
]  # fmt: skip
Explain = Annotated[
    bool, Field(description="Add each top genre's words, with offsets and weights.")
]


class PredictRequest(BaseModel):
    description: str = Field(
        examples=["A detective hunts a serial killer."], json_schema_extra=NOT_BLANK
    )
    title: str = Field("", description="The movie's title, if known; it helps a little.")
    top_k: int = Field(3, ge=1, le=20)
    explain: Explain = False
    recall_target: RecallTarget = None

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
    explain: Explain = False
    recall_target: RecallTarget = None

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
    load_error: str | None = None
    limiter: anyio.CapacityLimiter | None = None

    def require_predictor(self) -> Predictor:
        if self.predictor is None:
            raise ModelError(f"model not loaded: {self.load_error or 'still starting'}")
        return self.predictor


def _load(state: ServiceState) -> None:
    path = state.settings.model_path
    try:
        predictor = load_predictor(path)
        predictor.predict_one("warm up the model before the first request")
    except TgplusError as error:
        state.load_error = str(error)
        log.error({"event": "model_not_loaded", "path": str(path), "error": str(error)})
        state.metrics.model_loaded.set(0)
        return
    state.predictor = predictor
    state.metrics.model_loaded.set(1)
    log.info(
        {
            "event": "model_loaded",
            "path": str(path),
            "kind": predictor.kind,
            "genres": len(predictor.genres),
        }
    )


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
        await anyio.to_thread.run_sync(_load, state)
        yield

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

    async def run(predictor: Predictor, texts: int, work: Callable[[], T]) -> T:
        """Run `work` inline when it is tiny, else in a worker thread (the loop stays free)."""
        if texts <= _INLINE_MAX_TEXTS and not predictor.model.needs_embeddings:
            return work()
        return await anyio.to_thread.run_sync(work, limiter=state.limiter)

    async def predict_one(
        request: Request,
        description: str,
        title: str,
        top_k: int,
        explain: bool = False,
        recall_target: float | None = None,
    ) -> JSONResponse:
        request.state.description_chars = len(description)
        predictor = state.require_predictor()
        limit = state.settings.max_description_chars
        prediction = await run(
            predictor,
            1,
            lambda: predictor.predict_one(
                description,
                title,
                top_k=top_k,
                max_chars=limit,
                explain=explain,
                recall_target=recall_target,
            ),
        )
        state.metrics.predictions.inc()
        return JSONResponse(prediction.as_dict())

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
        """Prometheus metrics: requests, latency, predictions, model state."""
        return PlainTextResponse(generate_latest(state.metrics.registry), media_type=METRICS_TYPE)

    @app.get("/predict", response_model=PredictionOut, tags=["predict"], responses=errors)
    async def predict_get(
        request: Request,
        description: Annotated[
            str, Query(description="The movie's plot.", json_schema_extra=NOT_BLANK)
        ],
        title: Annotated[str, Query(description="The movie's title, if known.")] = "",
        top_k: Annotated[int, Query(ge=1, le=20)] = 3,
        explain: Annotated[bool, Query(description="Add each top genre's words.")] = False,
        recall_target: Annotated[
            float | None,
            Query(gt=0.0, lt=1.0, description="Also return a genre set with this recall."),
        ] = None,
    ) -> JSONResponse:
        """Tag one description (query string)."""
        _strict_unquote(request.scope.get("query_string", b""), "the query string")
        return await predict_one(request, description, title, top_k, explain, recall_target)

    @app.post("/predict", response_model=PredictionOut, tags=["predict"], responses=errors)
    async def predict_post(request: Request, body: PredictRequest) -> JSONResponse:
        """Tag one description (JSON body)."""
        return await predict_one(
            request, body.description, body.title, body.top_k, body.explain, body.recall_target
        )

    @app.post(
        "/predict/batch",
        response_model=BatchResponse,
        tags=["predict"],
        responses={
            **errors,
            413: {"model": ErrorOut, "description": "Too many items (fewer with explain=true)."},
        },
    )
    async def predict_batch(request: Request, body: BatchRequest) -> JSONResponse:
        """Tag many descriptions at once, answered in the same order."""
        limit = state.settings.max_batch_size
        if len(body.descriptions) > limit:
            raise TooMuchInput(
                f"batch of {len(body.descriptions)} descriptions is over the limit of {limit}; "
                "split it into smaller batches"
            )
        explain_limit = state.settings.max_explain_batch_size
        if body.explain and len(body.descriptions) > explain_limit:
            raise TooMuchInput(
                f"batch of {len(body.descriptions)} descriptions with explain=true is over the "
                f"limit of {explain_limit}; split it, or explain only the ones you need"
            )
        items = body.descriptions
        descriptions = [i if isinstance(i, str) else i.description for i in items]
        titles = ["" if isinstance(i, str) else i.title for i in items]
        request.state.description_chars = sum(map(len, descriptions))
        predictor = state.require_predictor()
        limit = state.settings.max_description_chars
        predictions = await run(
            predictor,
            len(items),
            lambda: predictor.predict(
                descriptions,
                titles,
                top_k=body.top_k,
                max_chars=limit,
                explain=body.explain,
                recall_target=body.recall_target,
            ),
        )
        state.metrics.predictions.inc(len(items))
        return JSONResponse({"predictions": [p.as_dict() for p in predictions]})

    @app.get(
        "/{description:path}", response_model=PredictionOut, tags=["predict"], responses=errors
    )
    async def predict_path(request: Request, description: str) -> JSONResponse:
        """The original demo's call: `GET /<url-encoded description>` -> `{"genre": ...}`."""
        _strict_unquote(request.scope.get("raw_path", b""), "the path")
        return await predict_one(request, description, "", 3)

    return app


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
