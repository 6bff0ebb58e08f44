"""The one place sealscope errors become HTTP: every error body is
``{"error": <code>, "message": <sentence>}`` (validation errors add ``detail``).

Nothing a client sent is echoed back whole: a validation error lists at most
``SHOWN_ERRORS`` faults and keeps at most ``SHOWN_CHARS`` of each offending value, key or
path, so a huge body cannot come back as a huge answer.
"""

from __future__ import annotations

import json
import logging
import math
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sealscope.errors import (
    AccessDenied,
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    SignInThrottled,
    StoreError,
    StoreUnavailable,
)

__all__ = [
    "SHOWN_CHARS",
    "SHOWN_ERRORS",
    "ApiError",
    "error_response",
    "install_handlers",
    "validation_response",
]

log = logging.getLogger(__name__)

_DEFAULT_RETRY_AFTER_S = 5
SHOWN_CHARS = 200
SHOWN_ERRORS = 20  # a body with 50,000 unknown keys gets 20 entries and a count, not 50,000


class ApiError(Exception):
    """A refusal decided in a route (e.g. acknowledging a resolved alert)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def error_response(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    """The one error shape; anything that builds an error answer goes through here."""
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _clip(text: str) -> str:
    # lone surrogates (from a path or a JSON escape) cannot be encoded into the answer
    text = text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"
    return text.encode("utf-8", "replace").decode("utf-8")


def _shown_input(value: Any) -> Any:
    """The offending value, cut to SHOWN_CHARS; a large object or array is left out."""
    if isinstance(value, str):
        return _clip(value)
    if isinstance(value, bytes):
        return _clip(value.decode("utf-8", "replace"))
    if value is None or isinstance(value, bool | int | float):
        return value
    try:
        text = json.dumps(jsonable_encoder(value), ensure_ascii=False)
    except (TypeError, ValueError):
        return None
    return value if len(text) <= SHOWN_CHARS else None


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    # pydantic puts exception objects in ctx and a docs URL in each error; keep what a
    # client can show next to the field
    cleaned = []
    for err in errors:
        entry = {k: v for k, v in err.items() if k not in ("url", "ctx", "input", "loc")}
        # an unknown key's name is client text too
        entry["loc"] = [p if isinstance(p, int) else _clip(str(p)) for p in err.get("loc", ())]
        if "input" in err:
            shown = _shown_input(err["input"])
            if shown is not None or err["input"] is None:
                entry["input"] = shown
        if "ctx" in err:
            entry["ctx"] = {k: _clip(str(v)) for k, v in err["ctx"].items()}
        cleaned.append(entry)
    return jsonable_encoder(cleaned)


def _where(loc: Any) -> str:
    return ".".join(str(p) for p in loc) or "request"


def validation_response(errors: Any) -> JSONResponse:
    """422 for a list of pydantic-style errors (type, loc, msg, optional input and ctx)."""
    errors = list(errors)
    detail = _clean_errors(errors[:SHOWN_ERRORS])
    parts = [f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in detail[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    message = _sentence("Invalid request: " + "; ".join(parts) + more)
    return error_response(422, "validation_error", message, detail=detail)


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc.errors())


async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
    # the edge bounds every number; this catches one a store still could not hold
    log.warning("%s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return error_response(
        422, "out_of_range", "A value in the request is out of the range the store can hold."
    )


async def _not_unicode(request: Request, exc: Exception) -> JSONResponse:
    log.warning("unencodable text on %s %s", request.method, request.url.path)
    return error_response(
        422, "invalid_text", "Text in the request is not valid Unicode (a lone surrogate)."
    )


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFound)
    return error_response(
        404, "not_found", f"{exc.kind.capitalize()} {_clip(exc.key)!r} was not found."
    )


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Conflict)
    return error_response(
        409, "conflict", f"{exc.kind.capitalize()} {_clip(exc.key)!r} already exists."
    )


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    if isinstance(exc, StoreUnavailable):
        retry_after = (
            max(1, math.ceil(exc.retry_after_s))
            if exc.retry_after_s is not None
            else _DEFAULT_RETRY_AFTER_S
        )
        response = error_response(
            503,
            "store_unavailable",
            _sentence(f"The store is unavailable, retry in {retry_after} s: {exc}"),
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(502, "store_error", _sentence(f"The store refused the request: {exc}"))


async def _config_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConfigError)
    log.error("configuration error: %s", exc)
    return error_response(
        500, "config_error", _sentence(f"The server is misconfigured: {exc.setting}")
    )


async def _access_denied(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccessDenied)
    if isinstance(exc, SignInThrottled):
        response = error_response(429, "too_many_sign_ins", _sentence(exc.reason))
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response
    if isinstance(exc, Forbidden):
        return error_response(403, "forbidden", _sentence(exc.reason))
    response = error_response(401, "unauthenticated", _sentence(exc.reason))
    response.headers["WWW-Authenticate"] = 'Bearer realm="sealscope"'
    return response


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.message)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own 404 (unknown path) and 405, so they share the error shape too
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else phrase
    response = error_response(
        exc.status_code, code, _sentence(f"{message}: {_clip(request.url.path)}")
    )
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        500, "internal_error", "The server failed to answer; the error is logged."
    )


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(AccessDenied, _access_denied)
    app.add_exception_handler(ApiError, _api_error)
    # a number past int64 or a lone surrogate reaching SQLite is the client's input, not a
    # server fault
    app.add_exception_handler(OverflowError, _out_of_range)
    app.add_exception_handler(UnicodeEncodeError, _not_unicode)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
