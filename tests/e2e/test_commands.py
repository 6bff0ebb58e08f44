"""A technician's stroke test, end to end: API -> Mosquitto (``.../cmd``, QoS 1) -> the
CoAP gateway's downlink queue -> a simulated NB-IoT valve's next uplinks -> the gateway's
``.../cmd/status`` -> ingest -> ``device_commands`` -> the API's command list. Every piece
is the real one, each as its own service on the same broker and state file."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from composition.runtime import run_api, run_gateway, run_ingest, sim_transport
from composition.servers import MosquittoServer, free_port
from firmware_sim import Fleet, FleetSpec, run_simulation
from sealscope.accounts import Authenticator, Site, SqliteAccountStore
from sealscope.config import Settings
from sealscope.registry import SqliteDeviceRegistry
from tests.gateway.helpers import free_udp_port
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM telemetry").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet
            return 0


def _keys(settings: Settings) -> dict[str, str]:
    store = SqliteAccountStore(settings.state_db)
    try:
        auth = Authenticator(store)
        keys = {}
        for kind in ("operator", "manufacturer"):
            org = store.create_org(
                name=kind, kind=kind, manufacturer_code="ACME" if kind == "manufacturer" else None
            )  # type: ignore[arg-type]
            keys[kind] = auth.create_key(org.id, name=kind)[0]
            if kind == "operator":
                store.put_site(Site("north", org.id, "R1"))
    finally:
        store.close()
    return keys


async def test_stroke_test_goes_to_the_valve_and_its_states_come_back(
    tmp_path: Path,
    fresh_mosquitto: Callable[..., MosquittoServer],
) -> None:
    broker = fresh_mosquitto()
    settings = Settings(
        data_dir=tmp_path / "data",
        mqtt_host=broker.host,
        mqtt_port=broker.port,
        mqtt_password=None,
        batch_max_age_s=0.05,
        coap_host="127.0.0.1",
        coap_port=free_udp_port(),
        detect=False,
        store="sqlite",
        api_host="127.0.0.1",
        api_port=free_port(),
        api_allowed_hosts=["localhost"],
    )
    settings.data_dir.mkdir(parents=True)
    fleet = Fleet(FleetSpec(devices=4, seed=5, valve_share=1.0))
    registry = SqliteDeviceRegistry(settings.state_db)
    valve = replace(fleet.devices[0], site="north")  # the operator's
    registry.upsert_many([valve, *fleet.devices[1:]])
    keys = _keys(settings)
    transport = sim_transport(
        settings, fleet, "coap", connections=4, downlink=True,
        coap_host="127.0.0.1", coap_port=settings.coap_port,
    )  # fmt: skip
    stop, sim_stop = asyncio.Event(), asyncio.Event()
    base = f"http://localhost:{settings.api_port}"
    commands_url = f"/api/v1/devices/{valve.device_id}/commands"

    def get(role: str, url: str) -> httpx.Response:
        return httpx.get(base + url, headers={"Authorization": f"Bearer {keys[role]}"}, timeout=10)

    def state() -> str | None:
        data = get("operator", commands_url).json()["data"]
        return data[0]["state"] if data else None

    try:
        async with asyncio.TaskGroup() as tg:
            # the three services as `sealscope ingest`, `gateway` and `api` run them
            tg.create_task(run_ingest(settings, stop=stop))
            tg.create_task(run_gateway(settings, stop=stop))
            tg.create_task(run_api(settings, stop=stop))
            try:
                sim = tg.create_task(
                    run_simulation(
                        fleet=fleet, uplinks=None, interval_s=0.3, transport=transport,
                        registry=None, stop=sim_stop,
                    )
                )  # fmt: skip
                # the gateway and ingest are up once an uplink made it into the store
                await wait_until(
                    lambda: _stored(settings.telemetry_db) > 0, 30, "the first uplinks"
                )
                assert not sim.done()
                posted = await asyncio.to_thread(
                    httpx.post,
                    base + commands_url,
                    json={"name": "stroke_test", "ttl_s": 3600},
                    headers={"Authorization": f"Bearer {keys['operator']}"},
                    timeout=10,
                )
                assert posted.status_code == 202, posted.text
                command = posted.json()
                assert command["state"] == "requested"
                assert command["created_by"] == "operator"
                # every state the list showed, polled off the loop the services run on
                seen: list[str] = []
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 60
                while not seen or seen[-1] != "succeeded":
                    assert loop.time() < deadline, f"the command got only to {seen}"
                    now = await asyncio.to_thread(state)
                    if now is not None and (not seen or seen[-1] != now):
                        seen.append(now)
                    await asyncio.sleep(0.05)
                (done,) = (await asyncio.to_thread(get, "operator", commands_url)).json()["data"]
                assert done["id"] == command["id"]
                assert done["attempts"] >= 1
                # states only ever moved forward
                order = ["requested", "pending", "sent", "delivered", "succeeded"]
                assert [order.index(s) for s in seen] == sorted(order.index(s) for s in seen)
                # a manufacturer never sees a site's commands
                refused = await asyncio.to_thread(get, "manufacturer", commands_url)
                assert refused.status_code == 403
            finally:
                sim_stop.set()
                stop.set()
    finally:
        registry.close()


async def test_stopping_the_api_ends_its_open_streams(tmp_path: Path) -> None:
    # no broker: the API starts without one (commands 503, the stream has alerts only)
    settings = Settings(
        data_dir=tmp_path / "data",
        mqtt_port=free_port(),
        store="sqlite",
        api_host="127.0.0.1",
        api_port=free_port(),
        api_allowed_hosts=["localhost"],
    )
    settings.data_dir.mkdir(parents=True)
    keys = _keys(settings)
    stop = asyncio.Event()
    api = asyncio.create_task(run_api(settings, stop=stop))
    url = f"http://localhost:{settings.api_port}/api/v1/stream"
    auth = {"Authorization": f"Bearer {keys['operator']}"}
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(200):  # until it listens
            with contextlib.suppress(httpx.ConnectError):
                await client.get(f"http://localhost:{settings.api_port}/healthz")
                break
            await asyncio.sleep(0.05)
        async with client.stream("GET", url, headers=auth) as response:
            assert response.status_code == 200
            lines = response.aiter_lines()
            assert await anext(lines) == "retry: 3000"
            stop.set()
            # the server ends the stream itself (before uvicorn's 10 s graceful cut-off)
            async with asyncio.timeout(8):
                rest = [line async for line in lines]
    assert all(line in ("", ": keepalive") for line in rest)
    async with asyncio.timeout(8):
        await api
