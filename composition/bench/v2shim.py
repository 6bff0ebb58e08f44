"""InfluxDB v2 write API in front of an InfluxDB 1.x, so influxdb-client's v2 path is real.

Debian's InfluxDB 1.6 has no ``/api/v2/write``. This translates::

    POST /api/v2/write?org=&bucket=B&precision=ns|us|ms|s
        -> POST {target}/write?db=B&precision=n|u|ms|s
    GET|POST /query?...  -> {target}/query?... (InfluxQL, as is)
    GET /health -> 200 {"status": "pass"}
    GET /ping -> 204

Bodies pass through untouched (gzip included); 1.x errors come back v2-shaped
(``{"code": "invalid", "message": ...}``) with the same status. With a token configured,
every route but /health and /ping needs ``Authorization: Token <token>``.

Run alone::

    SHIM_TOKEN=... python -m composition.bench.v2shim --listen-port 8087 \\
        --target http://127.0.0.1:8086 --token-env SHIM_TOKEN
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path

import aiohttp
import yarl
from aiohttp import web

from composition.servers.ports import ServerFailed, free_port
from composition.servers.process import ManagedServer
from sealscope.errors import ConfigError

__all__ = ["V2WriteShim", "create_app", "main"]

log = logging.getLogger(__name__)

_PRECISIONS = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
_V2_CODES = {
    400: "invalid",
    401: "unauthorized",
    403: "forbidden",
    404: "not found",
    413: "request too large",
    422: "unprocessable entity",
    429: "too many requests",
    500: "internal error",
    503: "unavailable",
}
_UNAUTHENTICATED_PATHS = frozenset({"/health", "/ping"})
_TOKEN_ENV = "SEALSCOPE_V2SHIM_TOKEN"
_SESSION: web.AppKey[aiohttp.ClientSession] = web.AppKey("session", aiohttp.ClientSession)
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _v2_error(status: int, message: str, retry_after: str | None = None) -> web.Response:
    code = _V2_CODES.get(status) or ("internal error" if status >= 500 else "invalid")
    headers = {"Retry-After": retry_after} if retry_after else None
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


async def _upstream_message(resp: aiohttp.ClientResponse) -> str:
    """1.x puts the reason in ``{"error": ...}`` and in X-Influxdb-Error."""
    try:
        body = await resp.json(content_type=None)
        if isinstance(body, dict) and isinstance(body.get("error"), str):
            return body["error"]
    except (ValueError, aiohttp.ClientError):
        pass
    return resp.headers.get("X-Influxdb-Error") or resp.reason or f"HTTP {resp.status}"


def create_app(
    *, target_url: str, token: str | None = None, max_body_bytes: int = 256 << 20
) -> web.Application:
    """The shim as an aiohttp application; serve it with ``auto_decompress=False``."""
    target = target_url.rstrip("/")

    @web.middleware
    async def require_token(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if token is not None and request.path not in _UNAUTHENTICATED_PATHS:
            scheme, _, given = request.headers.get("Authorization", "").partition(" ")
            if scheme != "Token" or not hmac.compare_digest(given.encode(), token.encode()):
                return _v2_error(401, "unauthorized access")
        return await handler(request)

    async def client_session(app: web.Application) -> AsyncIterator[None]:
        # no total timeout: a large write may take long; a dead target fails on connect
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with aiohttp.ClientSession(timeout=timeout, auto_decompress=True) as session:
            app[_SESSION] = session
            yield

    async def write(request: web.Request) -> web.StreamResponse:
        bucket = request.query.get("bucket")
        if not bucket:
            return _v2_error(400, "bucket is required")
        precision = request.query.get("precision", "ns")
        if precision not in _PRECISIONS:
            return _v2_error(400, f"precision {precision!r} is not one of ns, us, ms, s")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _v2_error(413, f"request body exceeds {max_body_bytes} bytes")
        headers = {"Content-Type": request.headers.get("Content-Type", "text/plain")}
        if "Content-Encoding" in request.headers:
            headers["Content-Encoding"] = request.headers["Content-Encoding"]
        params = {"db": bucket, "precision": _PRECISIONS[precision]}
        try:
            async with request.app[_SESSION].post(
                f"{target}/write", params=params, data=body, headers=headers
            ) as resp:
                if resp.status in (200, 204):
                    return web.Response(status=204)
                message = await _upstream_message(resp)
                if resp.status == 404:
                    message = f"bucket {bucket!r} not found ({message})"
                return _v2_error(resp.status, message, resp.headers.get("Retry-After"))
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("target %s unreachable: %s", target, exc)
            return _v2_error(503, f"InfluxDB unreachable: {exc}")

    async def query(request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.method == "POST" else None
        headers = {}
        if "Content-Type" in request.headers:
            headers["Content-Type"] = request.headers["Content-Type"]
        url = yarl.URL(f"{target}/query?{request.rel_url.raw_query_string}", encoded=True)
        try:
            async with request.app[_SESSION].request(
                request.method, url, data=body, headers=headers
            ) as resp:
                data = await resp.read()
                out_headers = {
                    k: v
                    for k, v in resp.headers.items()
                    if k.lower() == "content-type" or k.lower().startswith("x-influxdb-")
                }
                return web.Response(status=resp.status, body=data, headers=out_headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("target %s unreachable: %s", target, exc)
            return _v2_error(503, f"InfluxDB unreachable: {exc}")

    async def health(request: web.Request) -> web.StreamResponse:
        return web.json_response({"name": "sealscope-v2shim", "status": "pass"})

    async def ping(request: web.Request) -> web.StreamResponse:
        return web.Response(status=204)

    app = web.Application(middlewares=[require_token], client_max_size=max_body_bytes)
    app.cleanup_ctx.append(client_session)
    app.router.add_post("/api/v2/write", write)
    app.router.add_get("/query", query)
    app.router.add_post("/query", query)
    app.router.add_get("/health", health)
    app.router.add_get("/ping", ping)
    return app


async def _serve(app: web.Application, host: str, port: int) -> None:
    # gzip bodies go to InfluxDB as they came, so the server must not inflate them
    runner = web.AppRunner(app, access_log=None, auto_decompress=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await web.TCPSite(runner, host, port).start()
        log.info("v2 write shim on http://%s:%d", host, port)
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m composition.bench.v2shim")
    parser.add_argument("--listen-host", default="127.0.0.1")
    parser.add_argument("--listen-port", type=int, required=True)
    parser.add_argument("--target", required=True, help="InfluxDB 1.x base URL")
    parser.add_argument("--token-env", help="environment variable holding the required token")
    parser.add_argument("--max-body-bytes", type=int, default=256 << 20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    token = None
    if args.token_env:
        token = os.environ.get(args.token_env)
        if not token:
            parser.error(f"--token-env {args.token_env}: variable is unset or empty")
    app = create_app(target_url=args.target, token=token, max_body_bytes=args.max_body_bytes)
    asyncio.run(_serve(app, args.listen_host, args.listen_port))
    return 0


class V2WriteShim(ManagedServer):
    """The shim as a child process (``python -m composition.bench.v2shim``)."""

    name = "v2 write shim"

    def __init__(
        self,
        *,
        target_url: str,
        port: int | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        log_path: Path | None = None,
        start_timeout_s: float = 15.0,
    ) -> None:
        if not target_url.startswith(("http://", "https://")):
            raise ConfigError("target_url", f"{target_url!r} is not an http(s) URL")
        if token is not None and not token:
            raise ConfigError("token", "empty token; use None for no authentication")
        super().__init__(host=host)
        self.target_url = target_url
        self.port = port if port is not None else free_port(host)
        self._token = token
        self._given_log_path = log_path
        self._log_path: Path | None = log_path
        self._start_timeout_s = start_timeout_s

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def _prepare(self) -> None:
        if self._log_path is None:
            fd, name = tempfile.mkstemp(prefix="sealscope-v2shim-", suffix=".log")
            os.close(fd)
            self._log_path = Path(name)

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "composition.bench.v2shim"]
        argv += ["--listen-host", self.host, "--listen-port", str(self.port)]
        argv += ["--target", self.target_url]
        if self._token is not None:
            argv += ["--token-env", _TOKEN_ENV]
        return argv

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop(_TOKEN_ENV, None)
        if self._token is not None:
            # the token goes by environment: argv is world-readable in /proc
            env[_TOKEN_ENV] = self._token
        return env

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        self._wait_for_health(proc, self._start_timeout_s)

    def _after_stop(self) -> None:
        self._drop_temp_log()

    def _drop_temp_log(self) -> None:
        if self._given_log_path is None and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)
            self._log_path = None

    def _wait_for_health(self, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise ServerFailed(f"shim exited with {proc.returncode}")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/health", timeout=2) as response,
            ):
                if response.status == 200:
                    return
            if time.monotonic() >= deadline:
                raise ServerFailed(f"shim /health did not answer within {timeout_s}s")
            time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())
