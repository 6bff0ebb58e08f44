"""Request-body admission: a size cap, and strict JSON, before any route sees the body.

``BodyGuard`` is an ASGI middleware. A body over ``max_bytes`` answers 413, judged from
Content-Length when the client declares one and counted while streaming when it does not
(chunked), so a huge upload is never buffered whole. A body that is kept must be JSON, and
strict JSON: UTF-8, no duplicate keys, no NaN or Infinity, numbers a store can hold, strings
that are valid Unicode, and nesting no deeper than ``MAX_JSON_DEPTH``. Python's ``json``
accepts most of those silently, and the route would then answer a misleading type error or
fail deep in a store; here each is refused with a reason that names the real fault.

A path may have its own ``BodyRule`` (the fleet upload: a larger cap, and CSV as well as
JSON); a CSV body is left to its route, which reports faults per row.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from composition.api.handlers import error_response, validation_response

__all__ = ["DEFAULT_MAX_BODY_BYTES", "MAX_JSON_DEPTH", "BodyGuard", "BodyRule"]

DEFAULT_MAX_BODY_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
# past int64 no store keeps it; also keeps int() away from its 4,300-digit refusal
_MAX_INT_DIGITS = 19
_KEY_SHOWN_CHARS = 100
_DIGITS = re.compile(r"[0-9]{1,18}")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _Refused(Exception):
    """One fault in a JSON body, as a validation error entry."""

    def __init__(self, type_: str, msg: str, loc: tuple[str | int, ...] = ()) -> None:
        super().__init__(msg)
        self.entry = {"type": type_, "loc": ["body", *loc], "msg": msg}


def _shown(key: str) -> str:
    return key if len(key) <= _KEY_SHOWN_CHARS else key[:_KEY_SHOWN_CHARS] + "…"


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(
                    "json_duplicate_key",
                    f"duplicate key {_shown(key)!r} in a JSON object",
                    (_shown(key),),
                )
            seen.add(key)
    return obj


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        shown = text if len(text) <= 24 else text[:24] + "…"
        raise _Refused("json_number_too_large", f"the integer {shown} is out of range")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused("json_number_too_large", f"the number {text[:24]} is out of range")
    return value


def _constant(text: str) -> Any:
    raise _Refused("json_invalid", f"{text} is not JSON (JSON has no NaN or Infinity)")


def _check_tree(doc: Any) -> None:
    """Depth bound and valid Unicode (``\\ud800`` escapes decode to unencodable strings)."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused(
                    "json_invalid",
                    "a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff)",
                ) from None
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _Refused("json_too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        children = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children)


def parse_strict_json(body: bytes) -> Any:
    """The body as JSON, or ``_Refused`` naming what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Refused("json_invalid", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        # a truncated upload is the common case; say so rather than leave a puzzle
        ends_early = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated")
        raise _Refused(
            "json_invalid",
            f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg.lower()}"
            + ("; the body ends early (truncated?)" if ends_early else ""),
        ) from None
    except RecursionError:
        raise _Refused(
            "json_too_deep", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    _check_tree(doc)
    return doc


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _is_csv(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "text/csv"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


@dataclass(frozen=True, slots=True)
class BodyRule:
    """One path's admission: its size cap, and whether it also takes ``text/csv``."""

    max_bytes: int
    accepts_csv: bool = False


class BodyGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = DEFAULT_MAX_BODY_BYTES,
        rules: Mapping[str, BodyRule] | None = None,
    ) -> None:
        self.rules = dict(rules or {})
        for limit in (max_bytes, *(r.max_bytes for r in self.rules.values())):
            if limit <= 0:
                raise ValueError(f"max_bytes={limit}: must be positive")
        self.app = app
        self.max_bytes = max_bytes
        self._default = BodyRule(max_bytes)

    def _too_large(self, max_bytes: int) -> Any:
        return error_response(
            413,
            "payload_too_large",
            f"The request body is larger than {max_bytes} bytes.",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rule = self.rules.get(scope.get("path", ""), self._default)
        declared = _header(scope, b"content-length")
        if declared is not None:
            # ASCII digits only: str.isdigit() also admits '²', which int() refuses
            if not _DIGITS.fullmatch(declared.strip()):
                bad = error_response(400, "bad_request", "Content-Length is not a number.")
                await bad(scope, receive, send)
                return
            if int(declared) > rule.max_bytes:
                await self._too_large(rule.max_bytes)(scope, receive, send)
                return

        chunks: list[bytes] = []
        size = 0
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":
                first = message  # the client left; let the app see that
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > rule.max_bytes:
                await self._too_large(rule.max_bytes)(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)

        if body and first is None:
            refusal = self._refusal(scope, body, rule)
            if refusal is not None:
                await refusal(scope, receive, send)
                return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                if first is not None:
                    return first
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _refusal(self, scope: Scope, body: bytes, rule: BodyRule) -> Any:
        content_type = _header(scope, b"content-type")
        if rule.accepts_csv and content_type is not None and _is_csv(content_type):
            return None
        if content_type is None or not _is_json(content_type):
            return error_response(
                415,
                "unsupported_media_type",
                (
                    "Send the body as application/json or text/csv"
                    if rule.accepts_csv
                    else "Send the body as application/json"
                )
                + (
                    f" (got {content_type[:80]!r})."
                    if content_type
                    else " (no Content-Type given)."
                ),
            )
        try:
            parse_strict_json(body)
        except _Refused as exc:
            return validation_response([exc.entry])
        return None
