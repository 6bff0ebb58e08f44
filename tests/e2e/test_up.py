"""``sealscope up --simulate`` as a user runs it: a child process, Ctrl-C at the end."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from composition.servers import find_mosquitto, free_port

pytestmark = pytest.mark.e2e


def _wait_for(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


@pytest.mark.parametrize("broker", ["mosquitto", "amqtt"])
def test_up_simulate_serves_devices_telemetry_and_alerts_then_stops_losing_nothing(
    tmp_path: Path, broker: str
) -> None:
    if broker == "mosquitto" and find_mosquitto() is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed; CI must install it")
        pytest.skip("mosquitto is not installed")
    api_port, mqtt_port = free_port(), free_port()
    log_path = tmp_path / "up.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "composition", "--data-dir", str(tmp_path / "data"),
                "up", "--simulate", "10", "--sim-interval", "0.3", "--broker", broker,
                "--mqtt-port", str(mqtt_port), "--api-port", str(api_port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    api = f"http://127.0.0.1:{api_port}"
    try:
        _wait_for(lambda: "sealscope is up" in log_path.read_text(), 30, "start-up")
        text = log_path.read_text()
        assert f"{api}/" in text
        assert f"mqtt://127.0.0.1:{mqtt_port}" in text
        with httpx.Client(base_url=api, timeout=10) as client:
            devices = _wait_for(
                lambda: (
                    len(client.get("/api/v1/devices").json()["data"]) == 10
                    and client.get("/api/v1/devices").json()["data"]
                ),
                30,
                "ten registered devices",
            )
            valve = next(d["device_id"] for d in devices if d["kind"] == "valve")
            points = _wait_for(
                lambda: client.get(
                    f"/api/v1/devices/{valve}/telemetry", params={"field": "p_in_kpa"}
                ).json()["points"],
                30,
                "telemetry from the store",
            )
            assert all(isinstance(p["value"], float) for p in points)
            alerts = _wait_for(
                lambda: client.get("/api/v1/alerts", params={"status": "open"}).json()["data"],
                60,
                "an alert for a degrading seal",
            )
            assert {a["cause"] for a in alerts} == {"seat_leak"}
            # the live fleet risk table covers the simulated fleet (ten devices: no verdict)
            risk = client.get("/api/v1/risk")
            assert risk.status_code == 200, risk.text
            assert risk.json()["devices"] == 10
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    text = log_path.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "stopped cleanly" in text
    # every sample the broker acknowledged to the simulator is in the store, once
    acked = int(re.search(r"telemetry acknowledged: \d+ messages, (\d+) samples", text)[1])  # type: ignore[index]
    degrading = set(re.findall(r"^  (\S+)  onset t=", text, flags=re.MULTILINE))
    with sqlite3.connect(tmp_path / "data" / "telemetry.db") as db:
        stored = db.execute("SELECT count(*) FROM telemetry WHERE p_in_kpa IS NOT NULL").fetchone()
    assert stored[0] == acked > 0
    # no false alarm: every alerted device is one the simulator degraded
    with sqlite3.connect(tmp_path / "data" / "sealscope.db") as db:
        alerted = {row[0] for row in db.execute("SELECT device_id FROM alerts")}
    assert alerted and alerted <= degrading
    # the detectors' and the fleet risk's state were saved for the next start
    assert (tmp_path / "data" / "detectors" / "fleet_risk.npz").is_file()
