"""The CoAP uplink endpoint: ``POST /u/{device_id}?k={key}`` with a SenML pack.

One request: authenticate the device (4.01 without a word about the key; 4.29 once its
address failed too often, ``gateway.throttle``), decode and translate the SenML (4.00,
4.13 or 4.15 and one dead letter per distinct frame when it cannot be used, whatever the
decoder raised), hand the canonical messages to the ``UplinkSink`` and wait until they
are on disk, then answer 2.04 with whatever commands wait for the device.
gateway/README.md is the contract.

A 5.xx means "the gateway, not your frame: retry": only the sink (disk queue full or
failing) and bugs past decoding answer one. The resource never lets an exception out to
aiocoap; the next uplink is served as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import aiocoap
import aiocoap.resource
import cbor2

from gateway.downlink import Command, DownlinkQueue
from gateway.keys import DeviceKeys
from gateway.senml import (
    CONTENT_FORMAT_SENML_CBOR,
    CONTENT_FORMAT_SENML_JSON,
    BadSenml,
    decode,
)
from gateway.throttle import FailureThrottle
from gateway.translate import translate
from gateway.uplink import UplinkSink
from sealscope.deadletters import DeadLetterStore
from sealscope.errors import SpoolFull
from sealscope.topics import DEVICE_ID_PATTERN

__all__ = ["CoapServer", "CoapStats", "UplinkResource", "uplink_dedup_key"]

log = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES: Final = 64 * 1024
CONTENT_FORMAT_CBOR: Final = 60
CONTENT_FORMAT_JSON: Final = 50
RETRY_AFTER_FULL_S: Final = 60
_device_id_ok = re.compile(DEVICE_ID_PATTERN).fullmatch


@dataclass
class CoapStats:
    accepted: int = 0
    duplicates: int = 0
    unauthorized: int = 0
    throttled: int = 0  # of the unauthorized: answered 4.29
    bad_frames: int = 0
    unavailable: int = 0
    errors: int = 0
    commands_sent: int = 0


def uplink_dedup_key(device_id: str, seq: int, payload: bytes) -> str:
    """Same device, same seq, same bytes: a retry. A reused seq with new content is not."""
    return f"coap:{device_id}:{seq}:{hashlib.sha256(payload).hexdigest()[:32]}"


def _response(code: aiocoap.numbers.codes.Code, text: str = "") -> aiocoap.Message:
    if text:  # CoAP diagnostic payload: UTF-8 text, no content-format
        return aiocoap.Message(code=code, payload=text.encode()[:512])
    return aiocoap.Message(code=code)


def _key_of(request: aiocoap.Message) -> str | None:
    for item in request.opt.uri_query:
        name, sep, value = item.partition("=")
        if name == "k" and sep:
            return value
    return None


class UplinkResource(aiocoap.resource.Resource):
    """The gateway's whole CoAP site: ``/u/{device_id}`` and nothing else."""

    def __init__(
        self,
        *,
        keys: DeviceKeys,
        sink: UplinkSink,
        downlinks: DownlinkQueue | None = None,
        dead_letters: DeadLetterStore | None = None,
        clock: Callable[[], float] = time.time,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        auth_failures: FailureThrottle | None = None,
    ) -> None:
        super().__init__()
        self._keys = keys
        self._sink = sink
        self._downlinks = downlinks
        self._dead_letters = dead_letters
        self._clock = clock
        self._max_payload_bytes = max_payload_bytes
        self.auth_failures = auth_failures or FailureThrottle(what="CoAP key checks")
        self.stats = CoapStats()

    async def needs_blockwise_assembly(self, request: aiocoap.Message) -> bool:
        return True

    async def render(self, request: aiocoap.Message) -> aiocoap.Message:
        try:
            return await self._render(request)
        except Exception:
            self.stats.errors += 1
            log.exception("coap: uplink from %s failed inside the gateway", _remote(request))
            return _response(aiocoap.INTERNAL_SERVER_ERROR)

    async def _render(self, request: aiocoap.Message) -> aiocoap.Message:
        path = request.opt.uri_path
        if len(path) != 2 or path[0] != "u":
            return _response(aiocoap.NOT_FOUND)
        if request.code != aiocoap.POST:
            return _response(aiocoap.METHOD_NOT_ALLOWED)
        device_id = path[1]
        key = _key_of(request)
        if not _device_id_ok(device_id) or key is None or not self._keys.verify(device_id, key):
            return self._unauthorized(request, device_id, "no key" if key is None else "wrong key")
        content_format = request.opt.content_format
        fmt = int(content_format) if content_format is not None else None
        payload = request.payload
        if fmt not in (CONTENT_FORMAT_SENML_CBOR, CONTENT_FORMAT_SENML_JSON):
            why = "send senml+cbor (112) or +json (110)"
            await self._dead_letter(device_id, payload, f"content-format {fmt}: {why}")
            return _response(aiocoap.UNSUPPORTED_CONTENT_FORMAT, why)
        if len(payload) > self._max_payload_bytes:
            why = f"payload of {len(payload)} bytes is over {self._max_payload_bytes}"
            await self._dead_letter(device_id, payload, why)
            return _response(aiocoap.REQUEST_ENTITY_TOO_LARGE, why)
        try:
            uplink = translate(
                decode(payload, content_format=fmt, now_s=self._clock()), device_id=device_id
            )
        except BadSenml as exc:
            await self._dead_letter(device_id, payload, f"content-format {fmt}: {exc.reason}")
            return _response(aiocoap.BAD_REQUEST, exc.reason)
        except Exception as exc:  # a decoder's own fault is still this frame's: never a 5.xx
            log.warning("coap: decoding an uplink from %s failed", device_id, exc_info=True)
            why = f"undecodable ({type(exc).__name__})"
            await self._dead_letter(device_id, payload, f"content-format {fmt}: {why}")
            return _response(aiocoap.BAD_REQUEST, why)
        try:
            is_new = await self._sink.submit(
                uplink.messages, dedup_key=uplink_dedup_key(device_id, uplink.seq, payload)
            )
        except SpoolFull as exc:
            self.stats.unavailable += 1
            log.warning("coap: uplink %s/%d turned away: %s", device_id, uplink.seq, exc)
            response = _response(aiocoap.SERVICE_UNAVAILABLE, "queue full; retry later")
            response.opt.max_age = RETRY_AFTER_FULL_S
            return response
        if is_new:
            self.stats.accepted += 1
        else:
            self.stats.duplicates += 1
        commands: list[Command] = []
        if self._downlinks is not None:
            # a retry's reports were applied the first time
            reports = uplink.command_reports if is_new else ()
            commands = await self._downlinks.on_uplink(device_id, reports)
        if not commands:
            return _response(aiocoap.CHANGED)
        self.stats.commands_sent += len(commands)
        body = [c.for_device() for c in commands]
        if fmt == CONTENT_FORMAT_SENML_CBOR:
            return aiocoap.Message(
                code=aiocoap.CHANGED, payload=cbor2.dumps(body), content_format=CONTENT_FORMAT_CBOR
            )
        return aiocoap.Message(
            code=aiocoap.CHANGED,
            payload=json.dumps(body, separators=(",", ":")).encode(),
            content_format=CONTENT_FORMAT_JSON,
        )

    def _unauthorized(self, request: aiocoap.Message, device_id: str, why: str) -> aiocoap.Message:
        self.stats.unauthorized += 1
        source = _remote_host(request)
        wait_s = self.auth_failures.failed(
            source, f"coap: refused uplink for {device_id[:64]!r}: {why}"
        )
        if wait_s is None:
            return _response(aiocoap.UNAUTHORIZED)
        self.stats.throttled += 1
        response = _response(aiocoap.TOO_MANY_REQUESTS, "too many failed key checks")
        response.opt.max_age = max(1, math.ceil(wait_s))
        return response

    async def _dead_letter(self, device_id: str, payload: bytes, reason: str) -> None:
        """Keep a refused frame once (the store keeps a resent one once per device topic,
        across restarts too) and count it."""
        self.stats.bad_frames += 1
        log.info("coap: bad uplink from %s: %s", device_id, reason)
        if self._dead_letters is None:
            return
        await asyncio.to_thread(
            self._dead_letters.add,
            topic=f"coap:/u/{device_id}",
            payload=payload,  # the store keeps a bounded prefix, the size and the sha256
            code="malformed",
            reason=reason,
            device_id=device_id,
            once_per="rejected",
        )


def _remote_host(request: aiocoap.Message) -> str:
    """The sender's address without its port (a flood may change ports at will)."""
    try:
        return str(request.remote.sockaddr[0])
    except Exception:  # another transport's remote: its host info is the next best
        return _remote(request).rsplit(":", 1)[0]


def _remote(request: aiocoap.Message) -> str:
    try:
        return str(request.remote.hostinfo)
    except Exception:  # a remote without host info must not cost us the log line
        return "?"


class CoapServer:
    """``async with CoapServer(resource, host=..., port=...)``: serves until exit."""

    def __init__(self, resource: aiocoap.resource.Resource, *, host: str, port: int) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"{port} is not a UDP port")
        self.resource = resource
        self.host = host
        self.port = port
        self._context: aiocoap.Context | None = None

    async def __aenter__(self) -> CoapServer:
        # UDP only: aiocoap would also open CoAP over TCP, TLS and WebSockets by default
        host = "::" if self.host in ("0.0.0.0", "") else self.host  # udp6 is dual-stack
        self._context = await aiocoap.Context.create_server_context(
            self.resource, bind=(host, self.port), transports=["udp6"]
        )
        log.info("coap: serving uplinks on %s:%d/udp", self.host, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.shutdown()
