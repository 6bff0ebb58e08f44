"""The one place sealscope errors become HTTP: every error body is
``{"error": <code>, "message": <sentence>}`` (validation errors add ``detail``)."""

from __future__ import annotations

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

__all__ = ["ApiError", "install_handlers"]

log = logging.getLogger(__name__)

_DEFAULT_RETRY_AFTER_S = 5


class ApiError(Exception):
    """A refusal decided in a route (e.g. acknowledging a resolved alert)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def _body(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status_code=status)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "?", "!")) else text + "."


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    # pydantic puts exception objects in ctx and a docs URL in each error; keep what a
    # client can show next to the field
    cleaned = []
    for err in errors:
        entry = {k: v for k, v in err.items() if k not in ("url", "ctx")}
        if "ctx" in err:
            entry["ctx"] = {k: str(v) for k, v in err["ctx"].items()}
        cleaned.append(entry)
    return jsonable_encoder(cleaned)  # type: ignore[no-any-return]


def _where(loc: Any) -> str:
    return ".".join(str(p) for p in loc) or "request"


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = _clean_errors(exc.errors())
    parts = [f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in detail[:3]]
    more = f" (and {len(detail) - 3} more)" if len(detail) > 3 else ""
    message = _sentence("Invalid request: " + "; ".join(parts) + more)
    return _body(422, "validation_error", message, detail=detail)


async def _not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFound)
    return _body(404, "not_found", f"{exc.kind.capitalize()} {exc.key!r} was not found.")


async def _conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Conflict)
    return _body(409, "conflict", f"{exc.kind.capitalize()} {exc.key!r} already exists.")


async def _store_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StoreError)
    if isinstance(exc, StoreUnavailable):
        retry_after = (
            max(1, math.ceil(exc.retry_after_s))
            if exc.retry_after_s is not None
            else _DEFAULT_RETRY_AFTER_S
        )
        response = _body(
            503,
            "store_unavailable",
            _sentence(f"The store is unavailable, retry in {retry_after} s: {exc}"),
        )
        response.headers["Retry-After"] = str(retry_after)
        return response
    log.error("store error on %s %s: %s", request.method, request.url.path, exc)
    return _body(502, "store_error", _sentence(f"The store refused the request: {exc}"))


async def _config_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConfigError)
    log.error("configuration error: %s", exc)
    return _body(500, "config_error", _sentence(f"The server is misconfigured: {exc.setting}"))


async def _access_denied(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AccessDenied)
    if isinstance(exc, SignInThrottled):
        response = _body(429, "too_many_sign_ins", _sentence(exc.reason))
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
        return response
    if isinstance(exc, Forbidden):
        return _body(403, "forbidden", _sentence(exc.reason))
    response = _body(401, "unauthenticated", _sentence(exc.reason))
    response.headers["WWW-Authenticate"] = 'Bearer realm="sealscope"'
    return response


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _body(exc.status, exc.error, exc.message)


async def _http(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own 404 (unknown path) and 405, so they share the error shape too
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "error"
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else phrase
    response = _body(exc.status_code, code, _sentence(f"{message}: {request.url.path}"))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _body(500, "internal_error", "The server failed to answer; the error is logged.")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(StoreError, _store_error)
    app.add_exception_handler(ConfigError, _config_error)
    app.add_exception_handler(AccessDenied, _access_denied)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
