"""Alerts reach people: the ``up`` wiring (core stores with the outbox hooked, the API, the
dispatcher) on a real Mosquitto, with real aiohttp webhook receivers on free ports.

An operator subscribes through the API; an alert raised through the store the detectors use
arrives signed; its acknowledgement through the API arrives as its own delivery; the
delivery log shows both; a redelivery resends with the same id. A monitoring point whose
remit excludes the device receives nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from composition.admin import create_admin_key
from composition.alert_delivery import delivery_dispatcher
from composition.bench.webhook_receiver import WebhookReceiver
from composition.runtime import _api_server, _serve_until_started, open_core
from composition.servers import free_port, free_ports
from sealscope.config import Settings
from sealscope.registry import Device
from tests.waiting import wait_until

pytestmark = pytest.mark.e2e

VALVE = Device("ACME-DN50-000001", "valve", "ACME", "BV-50", site="north", region="R1")
WAIT_S = 20.0


async def _org(admin: httpx.AsyncClient, name: str, kind: str) -> tuple[int, str]:
    created = await admin.post("/api/v1/orgs", json={"name": name, "kind": kind})
    assert created.status_code == 201, created.text
    org_id = created.json()["id"]
    key = await admin.post(f"/api/v1/orgs/{org_id}/keys", json={"name": f"{name} key"})
    assert key.status_code == 201, key.text
    return org_id, key.json()["key"]


async def _subscribe(client: httpx.AsyncClient, port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/hook"
    response = await client.post("/api/v1/subscriptions", json={"channel": "webhook", "url": url})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    assert body["secret"].startswith("whsec_")
    return body


async def test_delivery_alert_and_its_acknowledgement_reach_the_operator_signed_not_others(
    tmp_path: Path, mosquitto: Any
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        store="sqlite",
        mqtt_host=mosquitto.host,
        mqtt_port=mosquitto.port,
    )
    admin_key = create_admin_key(settings)
    api_port = free_port()
    receivers: list[WebhookReceiver] = []
    async with (
        open_core(settings) as core,
        delivery_dispatcher(settings, core.outbox) as dispatcher,
        asyncio.TaskGroup() as tg,
    ):
        server = _api_server(core, "127.0.0.1", api_port, wake_dispatcher=dispatcher.wake)
        await _serve_until_started(server, tg)
        base = f"http://127.0.0.1:{api_port}"
        try:
            core.registry.add(VALVE)
            async with httpx.AsyncClient(
                base_url=base, timeout=10, headers={"Authorization": f"Bearer {admin_key}"}
            ) as admin:
                operator_id, operator_key = await _org(admin, "water works", "operator")
                point_id, point_key = await _org(admin, "river authority", "monitoring_point")
                site = await admin.put(
                    "/api/v1/sites/north", json={"operator_id": operator_id, "region": "R1"}
                )
                assert site.status_code == 200, site.text
                # the point watches pumps in R2: the valve in R1 is outside its remit
                remit = await admin.put(
                    f"/api/v1/orgs/{point_id}/remit", json={"regions": ["R2"], "kinds": ["pump"]}
                )
                assert remit.status_code == 200, remit.text
            operator = httpx.AsyncClient(
                base_url=base, timeout=10, headers={"Authorization": f"Bearer {operator_key}"}
            )
            point = httpx.AsyncClient(
                base_url=base, timeout=10, headers={"Authorization": f"Bearer {point_key}"}
            )
            async with operator, point:
                op_port, point_port = free_ports(2)
                op_sub = await _subscribe(operator, op_port)
                point_sub = await _subscribe(point, point_port)
                # each receiver checks the Standard Webhooks signature with its own secret
                op_hook = WebhookReceiver(secret=op_sub["secret"], port=op_port)
                point_hook = WebhookReceiver(secret=point_sub["secret"], port=point_port)
                for receiver in (op_hook, point_hook):
                    await receiver.start()
                    receivers.append(receiver)

                # raised through the alert store the detectors use
                alert = await asyncio.to_thread(
                    core.alerts.raise_alert,
                    device_id=VALVE.device_id,
                    cause="seat_leak",
                    category="maintenance_required",
                    severity=3,
                    summary="seat leak on the north valve",
                    evidence={"ratio": 2.5},
                    t=time.time(),
                )
                await wait_until(lambda: op_hook.received, timeout_s=WAIT_S, what="raised")
                raised = op_hook.received[0]
                assert raised.verified
                body = json.loads(raised.body)
                assert body["type"] == "alert.raised"
                assert body["delivery_id"] == raised.webhook_id
                assert body["data"]["alert_id"] == alert.id
                assert body["data"]["device_id"] == VALVE.device_id

                ack = await operator.post(f"/api/v1/alerts/{alert.id}/acknowledge", json={})
                assert ack.status_code == 200, ack.text
                await wait_until(
                    lambda: len(op_hook.received) >= 2, timeout_s=WAIT_S, what="acknowledged"
                )
                acked = op_hook.received[1]
                assert acked.verified
                assert json.loads(acked.body)["type"] == "alert.acknowledged"
                assert acked.webhook_id != raised.webhook_id

                async def delivered_log() -> list[dict[str, Any]]:
                    url = f"/api/v1/subscriptions/{op_sub['id']}/deliveries"
                    response = await operator.get(url, params={"state": "delivered"})
                    assert response.status_code == 200, response.text
                    data: list[dict[str, Any]] = response.json()["data"]
                    return data

                # the dispatcher records after the receiver answered: wait for both records
                log: list[dict[str, Any]] = []

                async def both_recorded() -> None:
                    nonlocal log
                    deadline = time.monotonic() + WAIT_S
                    while len(log := await delivered_log()) < 2:
                        assert time.monotonic() < deadline, f"delivery log: {log}"
                        await asyncio.sleep(0.05)

                await both_recorded()
                assert {d["id"] for d in log} == {raised.webhook_id, acked.webhook_id}
                for entry in log:
                    assert [a["status_code"] for a in entry["log"]] == [204]
                    assert entry["log"][0]["outcome"] == "delivered"

                # redelivery on request: sent again with the same delivery id
                again = await operator.post(f"/api/v1/deliveries/{raised.webhook_id}/redeliver")
                assert again.status_code == 200, again.text
                await wait_until(
                    lambda: op_hook.ids().count(raised.webhook_id) == 2,
                    timeout_s=WAIT_S,
                    what="redelivery",
                )
                assert op_hook.received[-1].verified

                # the monitoring point: nothing enqueued at either change, nothing sent
                url = f"/api/v1/subscriptions/{point_sub['id']}/deliveries"
                point_log = await point.get(url)
                assert point_log.status_code == 200, point_log.text
                assert point_log.json()["data"] == []
                assert point_hook.received == []
                # and the operator's subscription is not the point's to read
                other = await point.get(f"/api/v1/subscriptions/{op_sub['id']}")
                assert other.status_code == 404
                assert other.json()["error"] == "not_found"
        finally:
            server.should_exit = True
            for receiver in receivers:
                await receiver.stop()
