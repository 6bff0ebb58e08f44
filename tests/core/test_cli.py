"""The ``sealscope`` command line: each command reaches its component, bad options get a
clear message and exit status 2, and secrets do not reach the output."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest

from composition.cli import main

T0 = 1_767_225_600


def _valve_csv(path: Path, n: int = 600, step_at: int = 400) -> Path:
    """A closed valve's hourly seat leak (mL/min) at a wandering line pressure (bar); the
    seat is damaged at row ``step_at`` (leak coefficient x 8)."""
    rng = np.random.default_rng(1)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "P1", "P2", "Leak", "Pos"])
        for i in range(n):
            p1 = 8 + 2 * math.sin(i / 24 * 2 * math.pi) + rng.normal(0, 0.05)
            coeff = 0.02 * (8 if i >= step_at else 1) * math.exp(rng.normal(0, 0.1))
            leak = coeff * math.sqrt(max(p1 - 0.5, 0) * 100)
            w.writerow([T0 + 3600 * i, f"{p1:.3f}", "0.5", f"{leak:.4f}", "0"])
    return path


def test_detect_command_writes_scores_and_reports(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _valve_csv(tmp_path / "valve.csv")
    out = tmp_path / "scored.csv"
    code = main([
        "detect", str(src), "-o", str(out), "--time-column", "time",
        "--map", "leak=Leak:mlmin,pin=P1:bar,pout=P2:bar,pos=Pos", "--train-fraction", "0.3",
    ])  # fmt: skip
    assert code == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 600
    assert rows[0]["time"] == str(T0)  # original cells untouched
    flags = [int(r["anomaly_flag"]) for r in rows]
    assert not any(flags[:380]), "a healthy seat was flagged"
    assert any(flags[400:]), "the damaged seat was not flagged"
    assert "seat" in next(r["anomaly_cause"] for r in rows[400:] if r["anomaly_flag"] == "1")
    assert "600" in capsys.readouterr().out


def test_detect_command_refuses_a_missing_column_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _valve_csv(tmp_path / "valve.csv", n=50)
    code = main(["detect", str(src), "-o", str(tmp_path / "o.csv"), "--time-column", "when"])
    assert code == 2
    err = capsys.readouterr().err
    assert "configuration error" in err and "'when'" in err
    assert not (tmp_path / "o.csv").exists()
    code = main([
        "detect", str(src), "-o", str(tmp_path / "o.csv"), "--time-column", "time",
        "--persist", "3",
    ])  # fmt: skip
    assert code == 2 and "--persist" in capsys.readouterr().err


def test_eval_command_prints_the_scores(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["eval", "--devices", "20", "--days", "3", "--seeds", "1", "--sample-interval",
                 "1800"])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "all seeds:" in out and "false alarms" in out
    assert main(["eval", "--seeds", "one"]) == 2


def test_keys_command_issues_rotates_and_revokes_without_logging_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.keys import SqliteDeviceKeys, load_pepper

    data = tmp_path / "data"
    assert main(["--data-dir", str(data), "keys", "issue", "YJV-DN50-000001"]) == 0
    device, key = capsys.readouterr().out.split()
    assert device == "YJV-DN50-000001" and len(key) >= 20
    keys = SqliteDeviceKeys(data / "sealscope.db", pepper=load_pepper(data / "gateway" / "pepper"))
    try:
        assert keys.verify(device, key)
        # issuing again would lock the device out: refused, the old key still works
        assert main(["--data-dir", str(data), "keys", "issue", device]) == 1
        assert keys.verify(device, key)
        assert main(["--data-dir", str(data), "keys", "revoke", device]) == 0
        keys_after = SqliteDeviceKeys(
            data / "sealscope.db", pepper=load_pepper(data / "gateway" / "pepper"), cache_ttl_s=0
        )
        assert not keys_after.verify(device, key)
        keys_after.close()
    finally:
        keys.close()
    assert key not in capsys.readouterr().err


def test_gateway_settings_refuse_a_short_push_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEALSCOPE_PUSH_PORT", "0")
    monkeypatch.setenv("SEALSCOPE_PUSH_HUAWEI_TOKEN", "short-secret")
    code = main(["--data-dir", str(tmp_path / "data"), "gateway"])
    assert code == 2
    err = capsys.readouterr().err
    assert "huawei_token" in err and "short-secret" not in err


def test_up_command_refuses_a_taken_port_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        code = main(["--data-dir", str(tmp_path / "data"), "up", "--mqtt-port", str(taken)])
    assert code == 2
    assert f"127.0.0.1:{taken} is already in use" in capsys.readouterr().err


def test_bench_broker_command_refuses_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "broker", "--seconds", "0"]) == 2
    assert "--seconds" in capsys.readouterr().err
