"""``run_gateway`` as ``sealscope gateway`` runs it: settings in, stop event, HTTP app."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiocoap
import pytest

from composition.servers import MosquittoServer, free_port
from gateway import Gateway, SqliteDeviceKeys, load_pepper, run_gateway
from sealscope.config import Settings
from tests.gateway.helpers import Subscriber, cbor_pack, device_id, free_udp_port, post_uplink

pytestmark = pytest.mark.integration


async def _wait_for_udp_server(coap: aiocoap.Context, port: int) -> None:
    ping = aiocoap.Message(code=aiocoap.GET, uri=f"coap://127.0.0.1:{port}/")
    for _ in range(100):
        try:
            await asyncio.wait_for(coap.request(ping).response, 0.5)
            return
        except (TimeoutError, aiocoap.error.Error):
            await asyncio.sleep(0.05)
    raise TimeoutError("gateway did not answer")


async def test_run_gateway_serves_until_stopped(
    tmp_path: Path,
    mosquitto: MosquittoServer,
    coap: aiocoap.Context,
    subscribe: Callable[..., Subscriber],
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data", mqtt_host=mosquitto.host, mqtt_port=mosquitto.port
    )
    dev = device_id()
    keys = SqliteDeviceKeys(
        settings.state_db, pepper=load_pepper(settings.data_dir / "gateway" / "pepper")
    )
    key = keys.issue(dev)  # provisioned by another process, before the gateway starts
    keys.close()
    sub = subscribe(f"sealscope/v1/dev/{dev}/telemetry")
    port = free_udp_port()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_gateway(settings, coap_host="127.0.0.1", coap_port=port, stop=stop)
    )
    await _wait_for_udp_server(coap, port)

    class _Gw:  # post_uplink needs only the port
        coap_port = port

    raw = cbor_pack(dev, 1, [{"t": 1_718_000_000, "p_in_kpa": 5}])
    assert (await post_uplink(coap, _Gw(), dev, key, raw)).code == aiocoap.CHANGED  # type: ignore[arg-type]
    await sub.wait_count(1)
    stop.set()
    await asyncio.wait_for(task, 10)


async def test_gateway_serves_the_http_push_app(
    gateway_factory: Any,
) -> None:
    seen: list[Gateway] = []

    def factory(gw: Gateway) -> Any:
        seen.append(gw)

        async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return
            body = json.dumps({"backlog": gw.forwarder.backlog()}).encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        return app

    port = free_port()
    async with gateway_factory(http_port=port, http_app_factory=factory) as gw:
        assert seen == [gw]
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
        )
        assert json.loads(body) == {"backlog": 0}
