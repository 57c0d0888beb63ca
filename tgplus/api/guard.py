"""Limits by design, in one pure ASGI middleware in front of every route.

- at most `max_concurrent_requests` in the app at once; more get 503 + Retry-After
  at once, rather than waiting in an unbounded queue;
- a body larger than `max_body_bytes` gets a 413 before it is read: at once when
  Content-Length says so, as soon as the count passes the limit otherwise;
- a body must arrive within `body_timeout_seconds` (408), so a stalled upload
  cannot hold one of those places for ever;
- an unexpected exception becomes a 500 in the one error shape, logged as its
  type and stack frames only: exception messages can quote the request;
- security headers on every response;
- CORS only for the origins an operator lists.
"""

from __future__ import annotations

import math
import time
import traceback
import urllib.parse

import anyio
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tgplus.api.errors import BadEncoding, error_response, send_error, strict_unquote
from tgplus.api.observability import log
from tgplus.api.state import ServiceState

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
RETRY_AFTER_SECONDS = 1


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"request body is larger than the limit of {limit} bytes; send less at once"
        )


class BodyTooSlow(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body did not arrive within {seconds:g} s; send it at once")


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _line_break_in_path(scope: Scope, send: Send) -> Scope | None:
    """A path with a line break, which Starlette's routing gets wrong, made unambiguous.

    Route patterns end in `$`, which also matches before a final newline (so
    `/model%0A` reached `/model`), and `{description:path}` stops at a newline
    (so `GET /A%20heist%0Agoes%20wrong` was a 404). On GET such a path can only
    be a description: it is sent to `/predict?description=...`. Any other
    method gets a 404. Returns the scope to serve, or None once answered.
    """
    if scope["method"] != "GET":
        await send_error(send, 404, "Not Found")
        return None
    try:
        strict_unquote(scope.get("raw_path") or b"", "the path")
    except BadEncoding as error:
        await send_error(send, 400, str(error))
        return None
    query = urllib.parse.urlencode({"description": scope["path"][1:]}).encode()
    return {**scope, "path": "/predict", "raw_path": b"/predict", "query_string": query}


class Guard:
    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.state.settings
        started = False

        async def send_secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), *SECURITY_HEADERS]
            await send(message)

        if self.in_flight >= settings.max_concurrent_requests:
            await send_error(
                send_secured,
                503,
                f"the server is busy ({self.in_flight} requests in progress); "
                f"retry in {RETRY_AFTER_SECONDS} s",
                [(b"retry-after", str(RETRY_AFTER_SECONDS).encode())],
            )
            return
        if "\n" in scope["path"] or "\r" in scope["path"]:
            rewritten = await _line_break_in_path(scope, send_secured)
            if rewritten is None:
                return
            scope = rewritten
        else:
            try:  # every path, as the catch-all's description: well-formed UTF-8
                strict_unquote(scope.get("raw_path") or b"", "the path")
            except BadEncoding as error:
                await send_error(send_secured, 400, str(error))
                return
        limit = settings.max_body_bytes
        length = _content_length(scope)
        if length is not None and length > limit:
            await send_error(send_secured, 413, BodyTooLarge(limit).detail)
            return

        received = 0
        body_done = length == 0
        deadline = math.inf

        async def receive_limited() -> Message:
            nonlocal received, body_done, deadline
            if body_done:
                return await receive()  # waiting for a disconnect: no deadline
            if deadline == math.inf:
                deadline = time.monotonic() + settings.body_timeout_seconds
            try:
                with anyio.fail_after(max(deadline - time.monotonic(), 0)):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(settings.body_timeout_seconds) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                body_done = not message.get("more_body", False)
            return message

        self.in_flight += 1
        try:
            await self.app(scope, receive_limited, send_secured)
        except Exception as error:  # the last line of defence: never a traceback with user text
            log.error(
                {
                    "event": "unhandled_error",
                    "error": type(error).__name__,
                    "where": [
                        f"{frame.filename}:{frame.lineno} {frame.name}"
                        for frame in traceback.extract_tb(error.__traceback__)[-5:]
                    ],
                }
            )
            if not started:
                await send_error(send_secured, 500, "internal error; the server logged it")
        finally:
            self.in_flight -= 1


class _Cors(CORSMiddleware):
    """Starlette's CORS, whose refused preflight answers in the service's one error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code == 200:
            return response
        # Starlette's text names what was refused: "Disallowed CORS origin, headers".
        refused = bytes(response.body).decode().removeprefix("Disallowed CORS ")
        headers = {k: v for k, v in response.headers.items() if k.startswith("access-control-")}
        return error_response(
            response.status_code,
            f"cross-origin request refused ({refused} not allowed); the server allows the "
            "origins in TGPLUS_CORS_ORIGINS, methods GET, POST and DELETE, and headers "
            "Content-Type and Authorization",
            headers,
        )


class OptInCors:
    """CORS for the origins in `cors_origins` (read at startup); none by default."""

    def __init__(self, app: ASGIApp, state: ServiceState) -> None:
        self.app = app
        self.state = state
        self.cors: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        origins = self.state.settings.cors_origins
        if not origins or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.cors is None:
            self.cors = _Cors(
                self.app,
                allow_origins=origins,
                allow_methods=["GET", "POST", "DELETE"],
                allow_headers=["Content-Type", "Authorization"],
                max_age=600,
            )
        await self.cors(scope, receive, send)
