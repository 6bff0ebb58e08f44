"""The trusted-host check: the API answers only to the Host names it is configured for.

Until every route demands credentials, this is what keeps a web page from reaching the API
through a name the attacker controls (DNS rebinding) and what keeps a listener on 0.0.0.0
from answering arbitrary names. Starlette's ``TrustedHostMiddleware`` decides; a refusal is
400 in the API's own error shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["TrustedHosts"]

log = logging.getLogger(__name__)

_SHOWN_CHARS = 100


async def _discard(message: Message) -> None:
    return None


class TrustedHosts:
    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed_hosts = list(allowed_hosts)
        self._check = TrustedHostMiddleware(
            self._accepted, allowed_hosts=self.allowed_hosts, www_redirect=False
        )

    @staticmethod
    async def _accepted(scope: Scope, receive: Receive, send: Send) -> None:
        scope["sealscope.trusted_host"] = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Starlette's check runs with its own answer discarded; we answer in our shape
        await self._check(scope, receive, _discard)
        if scope.pop("sealscope.trusted_host", False):
            await self.app(scope, receive, send)
            return
        host = (Headers(scope=scope).get("host") or "")[:_SHOWN_CHARS]
        log.info("refused a request for host %r (not in api_allowed_hosts)", host)
        response = JSONResponse(
            {
                "error": "invalid_host",
                "message": f"Host {host!r} is not a name this API answers to"
                " (SEALSCOPE_API_ALLOWED_HOSTS).",
            },
            status_code=400,
        )
        await response(scope, receive, send)
