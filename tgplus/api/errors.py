"""How the service answers a request it cannot serve: the status for each error, as JSON."""

from __future__ import annotations

import re
import urllib.parse

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tgplus.errors import InputError, ModelError

_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HIGH_ESCAPE = re.compile(rb"%[89A-Fa-f][0-9A-Fa-f]")  # a byte >= 0x80: UTF-8 to check


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


async def _input_error(request: Request, error: Exception) -> JSONResponse:
    status = 400 if isinstance(error, BadEncoding) else 422
    if isinstance(error, TooMuchInput):
        status = 413
    return JSONResponse({"detail": str(error)}, status_code=status)


async def _model_error(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=503)


def add_error_handlers(app: FastAPI) -> None:
    """Bad input is a 4xx saying what was wrong; an unusable model is a 503."""
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(ModelError, _model_error)
