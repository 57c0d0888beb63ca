"""What the service tells its operators: JSON log lines and Prometheus metrics, one per request.

Never a byte of the user's text: a request is logged as its method, route
template, status, time and (for predictions) the description's length.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

import anyio
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tgplus.errors import StoreError
from tgplus.feedback import FeedbackRepository, FeedbackStore, Quality

log = logging.getLogger("tgplus.api")
QUALITY_CACHE_SECONDS = 5.0


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


class EditorMetrics:
    """Feedback and reload counters, and quality gauges refreshed from the database."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.feedback = Counter(
            "tgplus_feedback_received",
            "Feedback answers received by this process, stored or duplicate.",
            ["result"],
            registry=registry,
        )
        self.loads = Counter(
            "tgplus_model_loads",
            "Model loads by this process (startup, reload, SIGHUP).",
            ["result"],
            registry=registry,
        )
        self.store_up = Gauge(
            "tgplus_feedback_store_up",
            "1 when the feedback database answered the last metrics scrape.",
            registry=registry,
        )
        self.rows = Gauge(
            "tgplus_feedback_window_rows",
            "Feedback rows the quality figures cover (the latest TGPLUS_QUALITY_WINDOW).",
            registry=registry,
        )
        self.top_kept = Gauge(
            "tgplus_feedback_top_genre_kept_ratio",
            "Share of feedback where the editor kept the model's top genre.",
            registry=registry,
        )
        self.precision = Gauge(
            "tgplus_feedback_precision",
            "Suggested genres the editors kept, over all suggested (micro-averaged).",
            registry=registry,
        )
        self.recall = Gauge(
            "tgplus_feedback_recall",
            "Editors' genres the model had suggested, over all editors' genres (micro-averaged).",
            registry=registry,
        )
        self.genre_precision = Gauge(
            "tgplus_feedback_genre_precision",
            "Per genre: suggestions the editors kept, over suggestions.",
            ["genre"],
            registry=registry,
        )
        self.genre_recall = Gauge(
            "tgplus_feedback_genre_recall",
            "Per genre: editors' choices the model had suggested, over editors' choices.",
            ["genre"],
            registry=registry,
        )
        self._refreshed = -QUALITY_CACHE_SECONDS  # the first scrape reads the database

    async def refresh(self, store: FeedbackStore | None, window: int) -> None:
        """Read the quality over the latest `window` feedback (at most every few seconds)."""
        if store is None or time.monotonic() - self._refreshed < QUALITY_CACHE_SECONDS:
            return

        def read() -> Quality:
            with store.session() as session:
                return FeedbackRepository(store, session).quality(window)

        try:
            quality = await anyio.to_thread.run_sync(read)
        except StoreError as error:
            self.store_up.set(0)
            log.warning({"event": "quality_not_read", "error": str(error)})
            return
        self._refreshed = time.monotonic()
        self.store_up.set(1)
        self.rows.set(quality.feedback)
        for gauge, value in (
            (self.top_kept, quality.top_kept_share),
            (self.precision, quality.precision),
            (self.recall, quality.recall),
        ):
            gauge.set(float("nan") if value is None else value)
        self.genre_precision.clear()
        self.genre_recall.clear()
        for genre, figures in quality.per_genre.items():
            if figures.precision is not None:
                self.genre_precision.labels(genre).set(figures.precision)
            if figures.recall is not None:
                self.genre_recall.labels(genre).set(figures.recall)


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


def configure_logging(level: str) -> None:
    """Send tgplus's JSON lines to stderr unless the host application set up logging."""
    logger = logging.getLogger("tgplus")
    logger.setLevel(level.upper())
    if not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLines())
        logger.addHandler(handler)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Routes of FastAPI's own (docs) and the static files have no APIRoute template.
_FIXED_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
STATIC_ROUTE = "/static/{path}"
# The OPTIONS route matches every path: a 405 there means no route takes the method.
OPTIONS_ROUTE = "/{path:path}"


def route_label(scope: Scope, status: int) -> str:
    """The route template that served the request: a small, fixed set of metric labels.

    Never the raw path: `/static/r1/../app.js`, `/static/r2/../app.js`, ... would each
    be a new label set, and the metrics would grow without bound.
    """
    route = getattr(scope.get("route"), "path", None)
    if route is not None and not (route == OPTIONS_ROUTE and status == 405):
        return str(route)
    path = scope["path"]
    if status in (404, 405):
        return "unmatched"
    if path in _FIXED_PATHS:
        return str(path)
    if path.startswith("/static/"):
        return STATIC_ROUTE
    return "other"


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
            route = route_label(scope, status)
            method = scope["method"] if scope["method"] in METHODS else "other"
            state = scope.get("state", {})
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(route).observe(seconds)
            record = {
                "event": "request",
                "method": method,
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
