"""``sealscope up --simulate`` as a user runs it: a child process, Ctrl-C at the end."""

from __future__ import annotations

import contextlib
import json
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

from composition.servers import find_mosquitto, free_port, free_ports

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
    api_port, mqtt_port = free_ports(2)
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
        key = _admin_key(text)
        assert httpx.get(f"{api}/api/v1/devices", timeout=10).status_code == 401
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=api, timeout=10, headers=auth) as client:
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
            # the console says so: time, device, cause, severity, the advice's head
            opened = re.escape(f"alert OPEN  {alerts[-1]['device_id']}  seat_leak  severity")
            _wait_for(
                lambda: re.search(opened, log_path.read_text()), 10, "the alert's console line"
            )
            # live: the stream carries fresh readings from the API's broker subscription
            with client.stream("GET", "/api/v1/stream") as stream:
                assert stream.status_code == 200
                lines = stream.iter_lines()
                assert next(line for line in lines if line == "event: reading")
                assert json.loads(next(lines).removeprefix("data: "))["values"]
            # a command goes out through the same broker
            sent = client.post(f"/api/v1/devices/{valve}/commands", json={"name": "stroke_test"})
            assert sent.status_code == 202, sent.text
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
    # the key was printed once, by `up` itself, and never by a logger
    assert text.count(key) == 2  # the key line and the export line
    # no false alarm: every alerted device is one the simulator degraded
    with sqlite3.connect(tmp_path / "data" / "sealscope.db") as db:
        alerted = {row[0] for row in db.execute("SELECT device_id FROM alerts")}
    assert alerted and alerted <= degrading
    # the detectors' and the fleet risk's state were saved for the next start
    assert (tmp_path / "data" / "detectors" / "fleet_risk.npz").is_file()


# -- crash and restart ------------------------------------------------------------------


class _Up:
    """``sealscope up`` (Mosquitto) as a child process on fixed ports and a data dir."""

    def __init__(self, tmp_path: Path, *, mqtt_port: int, api_port: int) -> None:
        if find_mosquitto() is None:
            if os.environ.get("CI"):
                pytest.fail("mosquitto is not installed; CI must install it")
            pytest.skip("mosquitto is not installed")
        self.data = tmp_path / "data"
        self.mqtt_port, self.api_port = mqtt_port, api_port
        self.api = f"http://127.0.0.1:{api_port}"
        self.tmp_path = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.key = ""

    def start(self) -> None:
        self.starts += 1
        self.log_path = self.tmp_path / f"up-{self.starts}.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "composition", "--data-dir", str(self.data), "up",
                    "--broker", "mosquitto", "--mqtt-port", str(self.mqtt_port),
                    "--api-port", str(self.api_port),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait_for(lambda: "sealscope is up" in self.log_path.read_text(), 30, "start-up")
        text = self.log_path.read_text()
        if self.starts == 1:
            self.key = _admin_key(text)
        else:  # a restart never shows a key again, it says how to make one
            assert "ssk_" not in text
            assert "sealscope accounts create-key --admin" in text

    @property
    def broker_pid(self) -> int:
        return int((self.data / "mosquitto" / "mosquitto.pid").read_text())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=60)


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _admin_key(text: str) -> str:
    match = re.search(r"admin API key +(ssk_\S+)", text)
    assert match, text[-3000:]
    return match[1]


def _register(up: _Up, device_id: str) -> None:
    response = httpx.post(
        f"{up.api}/api/v1/devices",
        headers={"Authorization": f"Bearer {up.key}"},
        json={"device_id": device_id, "kind": "valve", "manufacturer": "MYCO", "model": "GV-80"},
        timeout=10,
    )
    assert response.status_code in (200, 201), response.text


def _publish_acked(port: int, device_id: str, count: int, *, first_seq: int = 1) -> None:
    """Publish ``count`` QoS 1 telemetry messages anonymously; returns once all are acked."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{first_seq}")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        t0 = int(time.time()) - 3 * count
        infos = [
            client.publish(
                f"sealscope/v1/dev/{device_id}/telemetry",
                f'{{"v":1,"seq":{seq},"samples":[{{"t":{t0 + 3 * seq},"p_in_kpa":800,'
                f'"p_out_kpa":2,"leak_mm3s":0.3,"position_pct":0}}]}}',
                qos=1,
            )
            for seq in range(first_seq, first_seq + count)
        ]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def _stored(data: Path, device_id: str) -> int:
    with contextlib.closing(sqlite3.connect(data / "telemetry.db")) as db:
        try:
            row = db.execute(
                "SELECT count(*) FROM telemetry WHERE device_id = ?", (device_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # no table before the first write
            return 0
    return int(row[0])


def test_up_restarts_after_sigkill_on_the_same_ports_and_drains(tmp_path: Path) -> None:
    up = _Up(tmp_path, mqtt_port=free_port(), api_port=free_port())
    try:
        up.start()
        _register(up, "MYCO-V-000001")
        broker_pid = up.broker_pid
        _publish_acked(up.mqtt_port, "MYCO-V-000001", 300)
        assert up.proc is not None
        up.proc.send_signal(signal.SIGKILL)  # no shutdown code runs in `up`
        up.proc.wait(timeout=10)
        # the broker dies with its parent (after saving what it acknowledged)
        _wait_for(lambda: not _pid_alive(broker_pid), 15, "the broker to die with up")
        up.start()  # same ports, same data dir: no "port already in use"
        assert up.broker_pid != broker_pid
        _wait_for(lambda: _stored(up.data, "MYCO-V-000001") == 300, 30, "all 300 stored")
        _publish_acked(up.mqtt_port, "MYCO-V-000001", 10, first_seq=301)
        _wait_for(lambda: _stored(up.data, "MYCO-V-000001") == 310, 30, "new messages stored")
    finally:
        up.stop()
    assert up.proc is not None and up.proc.returncode == 0, up.log_path.read_text()[-3000:]


def test_up_restarts_a_broker_that_died_alone_and_healthz_reports_it(tmp_path: Path) -> None:
    up = _Up(tmp_path, mqtt_port=free_port(), api_port=free_port())
    try:
        up.start()
        with httpx.Client(base_url=up.api, timeout=10) as client:
            healthy = client.get("/healthz")
            assert healthy.status_code == 200
            assert healthy.json()["status"] == "ok"
            assert healthy.json()["components"] == {"broker": "up", "ingest": "connected"}
            broker_pid = up.broker_pid
            os.kill(broker_pid, signal.SIGKILL)

            def degraded() -> dict[str, str] | None:
                response = client.get("/healthz")
                body = response.json()
                if body["status"] == "degraded":
                    assert response.status_code == 503
                    return dict(body["components"])
                return None

            down = _wait_for(degraded, 15, "/healthz to report the outage")
            assert down["broker"] == "down" or down["ingest"] == "reconnecting"
            _wait_for(lambda: client.get("/healthz").status_code == 200, 30, "/healthz ok again")
        assert up.broker_pid != broker_pid
        assert "broker: restarted on port" in up.log_path.read_text()
        _register(up, "MYCO-V-000002")
        _publish_acked(up.mqtt_port, "MYCO-V-000002", 5)
        _wait_for(lambda: _stored(up.data, "MYCO-V-000002") == 5, 30, "stored after restart")
    finally:
        up.stop()
    assert up.proc is not None and up.proc.returncode == 0, up.log_path.read_text()[-3000:]


def test_up_broker_keeps_ingest_when_a_client_connects_as_sealscope_ingest(
    tmp_path: Path,
) -> None:
    import json
    import queue

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    up = _Up(tmp_path, mqtt_port=free_port(), api_port=free_port())
    clients: list[mqtt.Client] = []

    def connect(
        client_id: str, *, protocol: int = mqtt.MQTTv311, login: tuple[str, str] | None = None
    ) -> tuple[mqtt.Client, mqtt.ReasonCode]:
        connacks: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=protocol,
            clean_session=False if protocol == mqtt.MQTTv311 else None,
        )
        if login is not None:
            client.username_pw_set(*login)
        client.on_connect = lambda _c, _u, _f, rc, _p: connacks.put(rc)
        client.connect("127.0.0.1", up.mqtt_port)
        client.loop_start()
        clients.append(client)
        return client, connacks.get(timeout=10)

    try:
        up.start()
        _register(up, "MYCO-V-000003")
        creds_path = up.data / "mosquitto" / "credentials.json"
        assert creds_path.stat().st_mode & 0o777 == 0o600
        ingest_password = json.loads(creds_path.read_text())["ingest"]["password"]
        # the well-known id, anonymously: it gets a session of its own, ingest keeps its own
        _, rc = connect("sealscope-ingest")
        assert not rc.is_failure
        # ingest's user name without its generated password is refused
        _, rc = connect("sealscope-ingest", login=("sealscope-ingest", "guessed-password"))
        assert rc.is_failure
        # the impostor still connected, ingest still consumes
        _publish_acked(up.mqtt_port, "MYCO-V-000003", 50)
        _wait_for(lambda: _stored(up.data, "MYCO-V-000003") == 50, 30, "all 50 stored")
        health = httpx.get(f"{up.api}/healthz", timeout=10).json()
        assert health["components"]["ingest"] == "connected"
        # anonymous clients publish uplinks only: a command for a device is refused
        client, _ = connect("test-v5", protocol=mqtt.MQTTv5)
        pubacks: queue.Queue[mqtt.ReasonCode] = queue.Queue()
        client.on_publish = lambda _c, _u, _mid, rc, _p: pubacks.put(rc)
        client.publish("sealscope/v1/dev/MYCO-V-000003/cmd", b"{}", qos=1)
        assert pubacks.get(timeout=10).is_failure
        # ingest was never kicked off (the broker closes the old connection on a takeover)
        assert "WARNING ingest.consumer" not in up.log_path.read_text()
        broker_log = (up.data / "mosquitto" / "mosquitto.log").read_text()
        assert "already connected, closing old connection" not in broker_log
    finally:
        for client in clients:
            client.disconnect()
            client.loop_stop()
        up.stop()
    assert ingest_password not in up.log_path.read_text()
    assert ingest_password not in (up.data / "mosquitto" / "mosquitto.log").read_text()
