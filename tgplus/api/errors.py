"""How the service answers a request it cannot serve: one JSON shape for every 4xx and 5xx.

    {"detail": "<one sentence>", "errors": [{"loc": [...], "msg": "...", "type": "..."}]}

An error never echoes the request back: not the text, not the invalid value
(pydantic's `input`), so a 20 MB request cannot make a 20 MB error, and
nothing a client sent ends up in a response it did not ask for.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Mount
from starlette.types import Send

from tgplus.errors import InputError, ModelError, StoreError

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HIGH_ESCAPE = re.compile(rb"%[89A-Fa-f][0-9A-Fa-f]")  # a byte >= 0x80: UTF-8 to check
_MAX_FIELD_ERRORS = 10
_MAX_LOC_CHARS = 40

ERROR_MEDIA_TYPE = "application/json"
CATCH_ALL = "/{description:path}"  # the original demo's `GET /<description>`


class BadEncoding(InputError):
    """The request's bytes are not well-formed percent-encoded UTF-8 (400)."""


class TooMuchInput(InputError):
    """More items than the configured limit (413)."""


def strict_unquote(raw: bytes, what: str) -> None:
    """Refuse percent-encoding that is malformed or does not decode to UTF-8."""
    if _BAD_ESCAPE.search(raw):
        raise BadEncoding(f"{what} has an invalid percent-escape; encode '%' as %25")
    if raw.isascii() and not _HIGH_ESCAPE.search(raw):
        return  # only ASCII once decoded: valid UTF-8 (the common case, checked cheaply)
    try:
        urllib.parse.unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise BadEncoding(f"{what} is not UTF-8 once percent-decoded; send UTF-8 text") from None


def error_body(detail: str, errors: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    return {"detail": detail, "errors": list(errors)}


def error_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(detail), status_code=status, headers=headers)


async def send_error(
    send: Send, status: int, detail: str, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer from ASGI middleware, before or instead of the app."""
    body = JSONResponse(error_body(detail)).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", ERROR_MEDIA_TYPE.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# pydantic's words for these say what is wrong but not what to do
_MESSAGES = {
    "extra_forbidden": "not a field of this request; the fields are listed at /docs",
    "json_invalid": "the request body is not valid JSON; send one JSON object",
}
NOT_JSON = (
    "the request body is not JSON text in UTF-8; send one JSON object with "
    "Content-Type: application/json"
)


def _field_error(error: Mapping[str, Any]) -> dict[str, Any]:
    loc = [part if isinstance(part, int) else str(part)[:_MAX_LOC_CHARS] for part in error["loc"]]
    message = _MESSAGES.get(str(error.get("type")), str(error.get("msg", "invalid")))
    return {
        "loc": loc,
        "msg": message.removeprefix("Value error, "),
        "type": str(error.get("type", "value_error")),
    }


def _where(loc: Sequence[str | int]) -> str:
    parts = [str(part) for part in loc if part not in ("body", "query", "path")]
    return ".".join(parts) or "the request body"


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [_field_error(e) for e in error.errors()]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request", "type": ""}
    detail = f"{_where(first['loc'])}: {first['msg']}"
    if first["type"] == "json_invalid":
        detail = str(first["msg"])  # its loc is a character offset, not a field
    elif first["loc"] == ["body"] and "json" not in request.headers.get("content-type", "json"):
        detail = NOT_JSON  # FastAPI reads only JSON bodies as objects
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more)"
    return JSONResponse(error_body(detail, problems[:_MAX_FIELD_ERRORS]), status_code=422)


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    headers = dict(error.headers or {})
    detail = str(error.detail)
    if error.status_code == 405:
        # Starlette's own 405 names the methods of the first matching route only.
        headers["Allow"] = allow_header(request.app.routes, request.scope["path"])
        if detail == "Method Not Allowed":
            detail = f"this path takes {headers['Allow']}, not {request.method}"
    elif error.status_code == 400 and detail == "There was an error parsing the body":
        detail = NOT_JSON  # FastAPI's words for a body that is not UTF-8
    return error_response(error.status_code, detail, headers=headers)


def allow_header(routes: Sequence[BaseRoute], path: str) -> str:
    """The methods `path` takes: those of its own routes, else the catch-all's GET."""
    own: set[str] = set()
    catch_all: set[str] = set()
    for route in routes:
        regex = getattr(route, "path_regex", None)
        methods: set[str] = getattr(route, "methods", None) or set()
        if regex is None or regex.match(path) is None or methods == {"OPTIONS"}:
            continue
        if isinstance(route, Mount):
            own |= {"GET", "HEAD"}
        elif getattr(route, "path", "") == CATCH_ALL:
            catch_all |= methods
        else:
            own |= methods
    return ", ".join(sorted((own or catch_all) | {"OPTIONS"}))


async def _input_error(request: Request, error: Exception) -> JSONResponse:
    status = 400 if isinstance(error, BadEncoding) else 422
    if isinstance(error, TooMuchInput):
        status = 413
    return error_response(status, str(error))


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    return error_response(503, str(error))


def add_error_handlers(app: FastAPI) -> None:
    """Bad input is a 4xx saying what was wrong; an unusable model or database is a 503;
    all one shape."""
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(ModelError, _unavailable)
    app.add_exception_handler(StoreError, _unavailable)
