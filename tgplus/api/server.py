"""Running the service with uvicorn, plus the one limit uvicorn lacks: time to send headers.

uvicorn closes an idle kept-alive connection after `timeout_keep_alive`, but a
connection that has sent half a request line (or nothing at all) waits for the
rest for ever, and its headers may grow without bound: 200 such clients were
never disconnected. `GuardedHttpTools` gives every request `header_timeout_seconds`
from its first byte (or from the connection's opening) to complete its request
line and headers, and `max_header_bytes` for them; otherwise it answers 408 or
431 and closes. `tgplus serve` uses it; plain `uvicorn tgplus.api:app` does not.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tgplus.api.errors import error_body
from tgplus.api.state import RELOAD_FILE_VARIABLE
from tgplus.config import Settings
from tgplus.errors import TgplusError

_REASONS = {400: b"Bad Request", 408: b"Request Timeout", 431: b"Request Header Fields Too Large"}


@functools.cache
def _settings() -> Settings:
    """Read once per worker process: `tgplus serve` puts its options in the environment."""
    return Settings()


class GuardedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline and a size limit for request headers."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _settings()
        self.header_timeout = settings.header_timeout_seconds
        self.max_header_bytes = settings.max_header_bytes
        self.header_timer: asyncio.TimerHandle | None = None
        self.header_bytes = 0
        self.awaiting_headers = False
        self.parsed_header_bytes = 0  # this request's line and headers, as the parser read them
        self.headers_too_large = False

    def _await_headers(self) -> None:
        if not self.awaiting_headers:
            self.awaiting_headers = True
            self.header_bytes = 0
        if self.header_timer is None:
            self.header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _headers_arrived(self) -> None:
        self.awaiting_headers = False
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._await_headers()  # a connection that never sends a byte counts too

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:  # the parser saw a request's first byte
        self._await_headers()
        self.parsed_header_bytes = 0
        super().on_message_begin()

    # Headers that arrive whole in one read never pass through `data_received` as unfinished
    # ones, so the parser's pieces are counted too: over the limit, the callback raises, the
    # parser fails, and `send_400_response` answers 431.
    def on_url(self, url: bytes) -> None:
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def _count_header_bytes(self, count: int) -> None:
        self.parsed_header_bytes += count
        if self.parsed_header_bytes > self.max_header_bytes:
            self.headers_too_large = True
            raise ValueError("request line and headers over the limit")

    def on_headers_complete(self) -> None:
        self._headers_arrived()
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.awaiting_headers and not self.transport.is_closing():
            self.header_bytes += len(data)
            if self.header_bytes > self.max_header_bytes:
                self._refuse(
                    431, f"request line and headers are over {self.max_header_bytes} bytes"
                )

    def send_400_response(self, msg: str) -> None:  # bytes that are not HTTP: the error shape
        if self.headers_too_large:
            self._refuse(431, f"request line and headers are over {self.max_header_bytes} bytes")
        else:
            self._refuse(400, "not an HTTP/1.1 request")

    def _headers_too_slow(self) -> None:
        self.header_timer = None
        if self.awaiting_headers and not self.transport.is_closing():
            self._refuse(
                408, f"request line and headers did not arrive within {self.header_timeout:g} s"
            )

    def _refuse(self, status: int, detail: str) -> None:
        body = json.dumps(error_body(detail)).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, _REASONS[status], len(body), body)
        )
        self._headers_arrived()
        self.transport.close()


def serve(settings: Settings) -> None:
    """Serve tgplus.api:app as `tgplus serve` does, with every limit from `settings`."""
    if settings.api_token is not None or settings.record_predictions:
        # A database URL that no database could answer is a setting to fix before starting
        # (StoreError: one line, exit 2); a database that is down is a 503 once running.
        from tgplus.feedback.store import engine_url

        engine_url(settings.database_url)
    if settings.workers == 1:
        _run(settings)
        return
    # Several workers: a file through which a reload reaches them all (see `follow_reloads`).
    handle, path = tempfile.mkstemp(prefix="tgplus-reload-")
    os.close(handle)
    os.environ[RELOAD_FILE_VARIABLE] = path  # inherited by the workers
    try:
        _run(settings)
    finally:
        Path(path).unlink(missing_ok=True)


def _run(settings: Settings) -> None:
    try:
        _uvicorn(settings)
    except SystemExit as stop:  # uvicorn logged why (a port in use, a host it cannot resolve)
        if stop.code in (None, 0):
            raise
        raise TgplusError(
            f"the server could not start on {settings.host}:{settings.port} (the line above "
            "says why); choose another --host or --port"
        ) from None


def _uvicorn(settings: Settings) -> None:
    uvicorn.run(
        "tgplus.api:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,  # the app logs one structured line per request itself
        http=GuardedHttpTools,
        timeout_keep_alive=settings.keep_alive_seconds,  # type: ignore[arg-type]
    )
