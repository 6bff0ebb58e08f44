"""The credentials file works: provisioned devices send through a real gateway and broker.

(The MQTT side, devices logging in to Mosquitto with their own password under the
dynamic-security ACL, needs sealscope.broker_admin; until it is on main this proves the
CoAP keys, through the running gateway into the real Mosquitto.)
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiocoap
import pytest
from fastapi.testclient import TestClient

from composition.api import create_app
from composition.servers import MosquittoServer
from gateway import Gateway
from sealscope import wire
from sealscope.config import Settings
from sealscope.storage.memory import MemoryTelemetryStore
from sealscope.topics import parse_device_topic
from tests.gateway.helpers import Subscriber, cbor_pack, free_udp_port, post_uplink
from tests.provisioning.conftest import (
    UPLOAD,
    bearer,
    bundle_rows,
    fleet_csv,
    fleet_rows,
    make_keys,
)

pytestmark = pytest.mark.integration

DEVICES = 100
T0 = 1_718_000_000


@pytest.fixture
async def coap() -> AsyncIterator[aiocoap.Context]:
    context = await aiocoap.Context.create_client_context()
    yield context
    await context.shutdown()


async def test_provisioned_coap_keys_send_through_a_running_gateway(
    tmp_path: Path, mosquitto: MosquittoServer, coap: aiocoap.Context
) -> None:
    settings = Settings(data_dir=tmp_path / "data", api_allowed_hosts=["testserver"])
    prefix = f"P{secrets.token_hex(3).upper()}"
    key = make_keys(settings)["acme"]
    app = create_app(settings, telemetry_store=MemoryTelemetryStore())
    with TestClient(app, headers=bearer(key)) as client:
        r = client.post(
            UPLOAD,
            content=fleet_csv(fleet_rows(DEVICES, prefix=prefix)),
            headers={"content-type": "text/csv", "accept": "text/csv"},
        )
        assert r.status_code == 200, r.text
    keys = {d: c["coap_key"] for d, c in bundle_rows(r.text).items()}
    assert len(keys) == DEVICES

    sub = Subscriber(mosquitto.host, mosquitto.port, "sealscope/v1/dev/+/telemetry")
    try:
        async with Gateway(
            data_dir=settings.data_dir,  # the same key store and pepper the API issued into
            state_db=settings.state_db,
            mqtt_host=mosquitto.host,
            mqtt_port=mosquitto.port,
            client_id=f"test-gw-{prefix}",
            coap_host="127.0.0.1",
            coap_port=free_udp_port(),
            drain_timeout_s=2.0,
        ) as gw:
            ids = sorted(keys)
            # a key opens only its own device
            stolen = await post_uplink(
                coap, gw, ids[0], keys[ids[1]], cbor_pack(ids[0], 0, [{"t": T0, "temp_c": 1}])
            )
            assert stolen.code == aiocoap.UNAUTHORIZED
            for start in range(0, DEVICES, 20):
                answers = await asyncio.gather(
                    *(
                        post_uplink(
                            coap, gw, d, keys[d], cbor_pack(d, 1, [{"t": T0, "p_in_kpa": 600}])
                        )
                        for d in ids[start : start + 20]
                    )
                )
                assert [a.code for a in answers] == [aiocoap.CHANGED] * len(answers)
            mine = await sub.wait_for(
                lambda ms: len([m for m in ms if f"/{prefix}-" in m.topic]) >= DEVICES, 20.0
            )
            assert await gw.forwarder.wait_drained(5)
    finally:
        sub.close()
    senders = {parse_device_topic(m.topic).device_id for m in mine if f"/{prefix}-" in m.topic}
    assert senders == set(ids)
    assert all(wire.decode_telemetry(m.payload).seq == 1 for m in mine if f"/{prefix}-" in m.topic)
