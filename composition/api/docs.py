"""The OpenAPI document and its two viewers, behind sign-in like every other route.

FastAPI lists each security dependency as an alternative; the document should say what the
server checks: a key, or the session cookie (with the CSRF header on unsafe methods).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse

from composition.api.auth import PrincipalDep

__all__ = ["install_docs"]

_SAFE = frozenset({"get", "head", "options"})
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
_REFUSALS = {
    "401": "no credentials, or a wrong, expired or revoked one",
    "403": "the caller's role may not do this (or the CSRF header is missing)",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        for operations in schema.get("paths", {}).values():
            for method, op in operations.items():
                if "security" not in op:
                    continue  # a public route
                session: dict[str, list[str]] = (
                    {"session": []} if method in _SAFE else {"session": [], "csrf": []}
                )
                op["security"] = [{"apiKey": []}, session]
                responses = op.setdefault("responses", {})
                for status, text in _REFUSALS.items():
                    responses.setdefault(status, {"description": text, "content": _ERROR})
        app.openapi_schema = schema
    return app.openapi_schema


def install_docs(app: FastAPI) -> None:
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    router = APIRouter(include_in_schema=False)

    @router.get("/openapi.json")
    def openapi(principal: PrincipalDep, request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    @router.get("/docs")
    def swagger(principal: PrincipalDep) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="sealscope API")

    @router.get("/redoc")
    def redoc(principal: PrincipalDep) -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title="sealscope API")

    app.include_router(router)
