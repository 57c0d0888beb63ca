"""What the service tells its operators: JSON log lines and Prometheus metrics, one per request.

Never a byte of the user's text: a request is logged as its method, route
template, status, time and (for predictions) the description's length.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("tgplus.api")


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
