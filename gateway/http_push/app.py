"""The HTTP push ingress: one aiohttp route per platform, a bounded queue, one worker.

A push is answered as soon as it is authenticated, parsed and queued (the platforms time
out in seconds and retry), so a slow broker or registry never stalls them. Answers:

=====  ===================================================================================
200    taken (queued), or a notification with nothing to forward (online/offline ...)
400    malformed, whatever the parser raised (too deep, duplicate keys, not JSON ...):
       dead-lettered with the reason (once per distinct body, not per retry)
401    no credential to check (no token, unsigned body); 403: wrong token or signature
413    body over ``max_body_bytes``: its first ``max_body_bytes`` are dead-lettered
       (when the route's token already proved the sender)
429    the source address failed too many checks (``gateway.throttle``); ``Retry-After``
503    the queue is full: the platform retries later (``Retry-After``)
=====  ===================================================================================

The worker resolves the platform's device id to the sealscope device id, submits the
canonical messages to the ``UplinkSink`` with the push's id as ``dedup_key`` (a platform's
retry is then not published twice), and dead-letters unknown devices. If the sink fails it
retries with capped, jittered backoff, holding the queue and so pushing back on the
platforms with 503; on shutdown it drains the queue for ``drain_timeout_s`` and
dead-letters what the sink still would not take, so nothing acknowledged vanishes.

aiohttp's default access log prints the query string, which holds the Huawei/CTWing token:
run the app with ``access_log_class=RedactingAccessLogger``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Final, TypeVar

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from gateway.throttle import FailureThrottle
from gateway.translate import translate
from gateway.uplink import CanonicalMessage, UplinkSink
from sealscope.deadletters import DeadLetterStore
from sealscope.errors import MalformedMessage, MessageRejected, TopicRejected
from sealscope.topics import check_device_id

from .auth import PlatformCredentials, PushRefused, check_url_token
from .ctwing import parse_ctwing
from .huawei import parse_huawei
from .notification import DeviceUplink, ParsedPush, Platform
from .onenet import parse_onenet, verify_onenet_url
from .payload import SenmlPack

__all__ = [
    "INGRESS",
    "DeviceResolver",
    "PushIngress",
    "PushStats",
    "RedactingAccessLogger",
    "create_push_app",
]

log = logging.getLogger(__name__)

DeviceResolver = Callable[[Platform, str], str | None]

_RETRY_AFTER_S: Final = "5"
_BACKOFF_MIN_S: Final = 0.2
_BACKOFF_MAX_S: Final = 10.0
_T = TypeVar("_T")


@dataclass(slots=True)
class PushStats:
    received: int = 0  # authenticated pushes
    refused: int = 0  # 401/403/429
    throttled: int = 0  # of the refused: 429
    malformed: int = 0  # 400
    busy: int = 0  # 503
    acknowledged: int = 0  # notifications with nothing to forward
    queued: int = 0  # device uplinks queued
    forwarded: int = 0  # taken by the sink
    duplicates: int = 0  # the sink had the dedup key already
    dead_letters: int = 0
    sink_retries: int = 0


class _GaveUp(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _addressed(uplink: DeviceUplink, device_id: str) -> list[CanonicalMessage]:
    messages: list[CanonicalMessage] = []
    for item in uplink.messages:
        if isinstance(item, SenmlPack):
            # command reports (cmd:{id} records) belong to the downlink queue, not this route
            messages += translate(list(item.records), device_id=device_id).messages
        else:
            retain = item.kind == "state"
            messages.append(CanonicalMessage(device_id, item.kind, item.payload, retain=retain))
    return messages


@dataclass(frozen=True, slots=True)
class _Queued:
    platform: Platform
    uplink: DeviceUplink
    body: bytes  # the push as it arrived, for a dead letter


class PushIngress:
    """The queue between the routes and the sink, and the worker that drains it."""

    def __init__(
        self,
        *,
        sink: UplinkSink,
        dead_letters: DeadLetterStore,
        resolve_device: DeviceResolver,
        queue_max: int,
        drain_timeout_s: float,
        max_body_bytes: int = 64 * 1024,
        auth_failures: FailureThrottle | None = None,
    ) -> None:
        if queue_max < 1:
            raise ValueError("queue_max must be at least 1")
        if drain_timeout_s < 0:
            raise ValueError("drain_timeout_s may not be negative")
        self.sink = sink
        self.dead_letters = dead_letters
        self.resolve_device = resolve_device
        self.drain_timeout_s = drain_timeout_s
        self.max_body_bytes = max_body_bytes
        self.auth_failures = auth_failures or FailureThrottle(what="push credential checks")
        self.stats = PushStats()
        self.closing = False
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue(maxsize=queue_max)
        self._give_up = asyncio.Event()

    # -- the routes' side ---------------------------------------------------------------

    def offer(self, platform: Platform, body: bytes, uplinks: list[DeviceUplink]) -> bool:
        """Queue all of a push's uplinks, or none of them (False: no room)."""
        if self.closing or self._queue.maxsize - self._queue.qsize() < len(uplinks):
            return False
        for uplink in uplinks:
            self._queue.put_nowait(_Queued(platform, uplink, body))
        self.stats.queued += len(uplinks)
        return True

    async def reject(self, platform: Platform, body: bytes, exc: MessageRejected) -> None:
        """Dead-letter a malformed push, once per distinct body (platforms retry a 400)."""
        await self._dead_letter(
            platform, body, exc.code, exc.reason, exc.device_id, once_per="rejected"
        )

    async def join(self) -> None:
        """Wait until every queued uplink was forwarded or dead-lettered."""
        await self._queue.join()

    # -- the worker ---------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            item = await self._queue.get()
            try:
                await self._forward(item)
            except Exception:
                # a bug must not stop the worker: keep the push and carry on
                log.exception("http push %s: could not forward an uplink", item.platform)
                await self._dead_letter(
                    item.platform, item.body, "undelivered", "internal error while forwarding"
                )
            finally:
                self._queue.task_done()

    async def stop(self, worker: asyncio.Task[None]) -> None:
        """Drain what was acknowledged to the platforms, then stop the worker."""
        self.closing = True
        try:
            await asyncio.wait_for(self._queue.join(), self.drain_timeout_s)
        except TimeoutError:
            log.warning(
                "http push: %d uplinks not forwarded after %.1f s; dead-lettering them",
                self._queue.qsize(),
                self.drain_timeout_s,
            )
            self._give_up.set()
            await self._queue.join()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    async def _forward(self, item: _Queued) -> None:
        uplink = item.uplink
        try:
            device_id = await self._retrying(item, self._resolve, item.platform, uplink)
        except _GaveUp as exc:
            await self._dead_letter(item.platform, item.body, "undelivered", exc.reason)
            return
        if device_id is None:
            refs = ", ".join(repr(r[:64]) for r in uplink.device_refs)
            reason = f"{item.platform} device {refs} is not mapped to a sealscope device"
            await self._dead_letter(item.platform, item.body, "unknown_device", reason)
            return
        try:
            messages = _addressed(uplink, check_device_id(device_id))
        except TopicRejected as exc:
            reason = f"resolved to an invalid device id: {exc.reason}"
            await self._dead_letter(item.platform, item.body, exc.code, reason)
            return
        except MessageRejected as exc:  # a SenML pack the translation refuses
            await self._dead_letter(item.platform, item.body, exc.code, exc.reason, device_id)
            return
        try:
            taken = await self._retrying(item, self._submit, messages, uplink.dedup_key)
        except _GaveUp as exc:
            await self._dead_letter(item.platform, item.body, "undelivered", exc.reason, device_id)
            return
        if taken:
            self.stats.forwarded += 1
        else:
            self.stats.duplicates += 1
            log.debug("http push %s: retry of %s not forwarded again", item.platform, device_id)

    async def _retrying(self, item: _Queued, op: Callable[..., Awaitable[_T]], *args: object) -> _T:
        """``op`` until it succeeds, with capped jittered backoff; ``_GaveUp`` once shutdown
        stops waiting for the registry or the sink."""
        delay_s = _BACKOFF_MIN_S
        while True:
            try:
                return await op(*args)
            except Exception as exc:
                if self._give_up.is_set():
                    raise _GaveUp(f"not forwarded before shutdown: {exc!r}"[:500]) from exc
                self.stats.sink_retries += 1
                log.warning(
                    "http push %s: forwarding failed (%r); retrying in about %.1f s",
                    item.platform,
                    exc,
                    delay_s,
                )
                await self._pause(delay_s)
                delay_s = min(delay_s * 2, _BACKOFF_MAX_S)

    async def _submit(self, messages: list[CanonicalMessage], dedup_key: str) -> bool:
        return await self.sink.submit(messages, dedup_key=dedup_key)

    async def _pause(self, delay_s: float) -> None:
        # jittered, and cut short when shutdown gives up on the sink
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._give_up.wait(), delay_s * random.uniform(0.5, 1.0))

    async def _resolve(self, platform: Platform, uplink: DeviceUplink) -> str | None:
        for ref in uplink.device_refs:
            device_id = await asyncio.to_thread(self.resolve_device, platform, ref)
            if device_id is not None:
                return device_id
        return None

    async def _dead_letter(
        self,
        platform: Platform,
        body: bytes,
        code: str,
        reason: str,
        device_id: str | None = None,
        *,
        once_per: str | None = None,
    ) -> None:
        added = await asyncio.to_thread(
            self.dead_letters.add,
            topic=f"push/{platform}",
            payload=body,
            code=code,
            reason=reason,
            device_id=device_id,
            once_per=once_per,
        )
        if added is None:
            return  # a body already kept once: a platform retrying what it got a 400 for
        self.stats.dead_letters += 1
        log.info("http push %s: dead-lettered a push (%s): %s", platform, code, reason)


INGRESS: Final = web.AppKey("sealscope_push_ingress", PushIngress)


class RedactingAccessLogger(AbstractAccessLogger):
    """An access log line without the query string (where the callback token lives)."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %s %d %.3fs",
            request.remote,
            request.method,
            request.path,
            response.status,
            time,
        )


def _refused(platform: Platform, request: web.Request, exc: PushRefused) -> web.Response:
    ingress = request.app[INGRESS]
    ingress.stats.refused += 1
    wait_s = ingress.auth_failures.failed(
        request.remote or "?", f"http push {platform}: refused {exc.status}: {exc.reason}"
    )
    if wait_s is not None:
        ingress.stats.throttled += 1
        retry_after = str(max(1, math.ceil(wait_s)))
        return web.json_response(
            {"error": "too many failed checks"}, status=429, headers={"Retry-After": retry_after}
        )
    error = "unauthorized" if exc.status == 401 else "forbidden"
    return web.json_response({"error": error}, status=exc.status)


async def _read_bounded(request: web.Request, max_bytes: int) -> tuple[bytes, bool]:
    """The body, or its first ``max_bytes`` and True if there was more (not read)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return b"".join(chunks)[:max_bytes], True
    return b"".join(chunks), False


async def _accept(
    request: web.Request,
    platform: Platform,
    parse: Callable[[bytes], ParsedPush],
    *,
    is_sender_known: bool,
) -> web.Response:
    """``is_sender_known``: the route checked the platform's token before the body, so a
    body too large to check a signature in may still be dead-lettered."""
    ingress = request.app[INGRESS]
    if ingress.closing:
        return web.json_response({"error": "stopping"}, status=503)
    body, is_cut = await _read_bounded(request, ingress.max_body_bytes)
    if is_cut:
        reason = f"body over {ingress.max_body_bytes} bytes (its first bytes are kept)"
        ingress.stats.malformed += 1
        if is_sender_known:
            await ingress.reject(platform, body, MalformedMessage(reason))
        return web.json_response({"error": "too_large", "reason": reason}, status=413)
    try:
        parsed = parse(body)
    except PushRefused as exc:
        return _refused(platform, request, exc)
    except MessageRejected as exc:
        ingress.stats.received += 1
        ingress.stats.malformed += 1
        await ingress.reject(platform, body, exc)
        return web.json_response({"error": exc.code, "reason": exc.reason[:500]}, status=400)
    except Exception as exc:
        # never a 500 for what a platform sent: keep it, say why, carry on
        log.warning("http push %s: could not parse a push", platform, exc_info=True)
        ingress.stats.received += 1
        ingress.stats.malformed += 1
        reason = f"could not parse the push (internal error: {type(exc).__name__})"
        await ingress.reject(platform, body, MalformedMessage(reason))
        return web.json_response({"error": "malformed", "reason": reason}, status=400)
    ingress.stats.received += 1
    if not parsed.uplinks:
        ingress.stats.acknowledged += 1
        return web.json_response({"result": "acknowledged"})
    if not ingress.offer(platform, body, parsed.uplinks):
        ingress.stats.busy += 1
        log.warning("http push %s: queue full, asked the platform to retry", platform)
        return web.json_response(
            {"error": "busy"}, status=503, headers={"Retry-After": _RETRY_AFTER_S}
        )
    return web.json_response({"result": "accepted", "uplinks": len(parsed.uplinks)})


def _url_token_route(
    platform: Platform, token: str, parse: Callable[[bytes], ParsedPush]
) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        try:
            check_url_token(request, token)
        except PushRefused as exc:
            return _refused(platform, request, exc)
        return await _accept(request, platform, parse, is_sender_known=True)

    return handle


def _onenet_routes(token: str) -> list[web.RouteDef]:
    async def verify(request: web.Request) -> web.Response:
        try:
            msg = verify_onenet_url(request.query, token)
        except PushRefused as exc:
            return _refused("onenet", request, exc)
        log.info("http push onenet: URL verification answered")
        return web.Response(text=msg, content_type="text/plain")

    async def push(request: web.Request) -> web.Response:
        return await _accept(
            request, "onenet", lambda body: parse_onenet(body, token), is_sender_known=False
        )

    return [web.get("/push/onenet", verify, allow_head=False), web.post("/push/onenet", push)]


def create_push_app(
    *,
    sink: UplinkSink,
    credentials: PlatformCredentials,
    dead_letters: DeadLetterStore,
    resolve_device: DeviceResolver,
    queue_max: int = 1000,
    drain_timeout_s: float = 10.0,
    max_body_bytes: int = 64 * 1024,
) -> web.Application:
    """The push ingress as an aiohttp app: ``POST /push/huawei``, ``POST /push/ctwing``,
    ``GET`` and ``POST /push/onenet``, each only if its credential is set.

    ``resolve_device(platform, platform_device_id)`` maps the platform's id for a device
    (its device id, then the IMEI/node id the push carries) to the sealscope device id, or
    None. It is called from a worker thread. The worker starts and stops with the app
    (``cleanup_ctx``); ``app[INGRESS]`` exposes its counters and ``join()``.
    """
    ingress = PushIngress(
        sink=sink,
        dead_letters=dead_letters,
        resolve_device=resolve_device,
        queue_max=queue_max,
        drain_timeout_s=drain_timeout_s,
        max_body_bytes=max_body_bytes,
    )
    app = web.Application(client_max_size=max_body_bytes)
    app[INGRESS] = ingress
    routes: list[web.RouteDef] = []
    if credentials.huawei_token is not None:
        handle = _url_token_route("huawei", credentials.huawei_token, parse_huawei)
        routes.append(web.post("/push/huawei", handle))
    if credentials.ctwing_token is not None:
        handle = _url_token_route("ctwing", credentials.ctwing_token, parse_ctwing)
        routes.append(web.post("/push/ctwing", handle))
    if credentials.onenet_token is not None:
        routes += _onenet_routes(credentials.onenet_token)
    if not routes:
        log.warning("http push: no platform credentials set; every push will get 404")
    app.add_routes(routes)

    async def worker(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(ingress.run(), name="http-push-worker")
        flush = asyncio.create_task(ingress.auth_failures.run(), name="http-push-auth-log")
        yield
        flush.cancel()
        await ingress.stop(task)
        with contextlib.suppress(asyncio.CancelledError):
            await flush

    app.cleanup_ctx.append(worker)
    return app
