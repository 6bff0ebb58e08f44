"""The v2 write shim in front of a real InfluxDB 1.x, driven by the real influxdb-client."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from influxdb_client import WritePrecision
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException

from composition.bench.v2shim import V2WriteShim
from composition.servers import free_port

pytestmark = pytest.mark.integration


def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def write_url(influx: Any, **params: str) -> str:
    query = {"org": influx.org, "bucket": influx.bucket, **params}
    return f"{influx.write_url}/api/v2/write?{urllib.parse.urlencode(query)}"


def auth(influx: Any) -> dict[str, str]:
    return {"Authorization": f"Token {influx.token}"}


def select(influx: Any, measurement: str) -> list[list[Any]]:
    result = influx.server.query(f'SELECT * FROM "{measurement}"', influx.database)
    series = result["results"][0].get("series", [])
    return series[0]["values"] if series else []


def unique_measurement() -> str:
    return f"shim_{uuid.uuid4().hex[:10]}"


def test_v2shim_health_and_ping_need_no_token(influx: Any) -> None:
    status, _, body = http("GET", f"{influx.write_url}/health")
    assert status == 200
    assert json.loads(body)["status"] == "pass"
    assert http("GET", f"{influx.write_url}/ping")[0] == 204


@pytest.mark.parametrize("header", [None, "Token wrong", "Bearer {token}", "{token}"])
def test_v2shim_write_without_the_token_is_401(influx: Any, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header.format(token=influx.token)}
    status, _, body = http("POST", write_url(influx), body=b"m f=1 1", headers=headers)
    assert status == 401
    assert json.loads(body)["code"] == "unauthorized"
    assert http("GET", f"{influx.write_url}/query?q=SHOW+DATABASES", headers=headers)[0] == 401


async def test_v2shim_influxdb_client_writes_land(influx: Any) -> None:
    m = unique_measurement()
    async with InfluxDBClientAsync(url=influx.write_url, token=influx.token, org=influx.org) as c:
        await c.write_api().write(
            bucket=influx.bucket,
            record=f"{m},device_id=ACME-1 p_in_kpa=101.5 1700000000000000000",
            write_precision=WritePrecision.NS,
        )
    assert select(influx, m) == [[1700000000000000000, "ACME-1", 101.5]]


async def test_v2shim_passes_gzip_bodies_through(influx: Any) -> None:
    m = unique_measurement()
    lines = "\n".join(f"{m},device_id=ACME-2 leak_mm3s={i}.5 {i}" for i in range(200))
    async with InfluxDBClientAsync(
        url=influx.write_url, token=influx.token, org=influx.org, enable_gzip=True
    ) as c:
        await c.write_api().write(bucket=influx.bucket, record=lines)
    assert len(select(influx, m)) == 200


def test_v2shim_gzip_with_explicit_header(influx: Any) -> None:
    m = unique_measurement()
    body = gzip.compress(f"{m} f=2 5".encode())
    headers = {**auth(influx), "Content-Encoding": "gzip"}
    assert http("POST", write_url(influx), body=body, headers=headers)[0] == 204
    assert select(influx, m) == [[5, 2]]


@pytest.mark.parametrize(
    ("precision", "timestamp", "expected_ns"),
    [("s", "2", 2_000_000_000), ("ms", "1500", 1_500_000_000), ("us", "7", 7_000), ("ns", "9", 9)],
)
def test_v2shim_maps_precision(
    influx: Any, precision: str, timestamp: str, expected_ns: int
) -> None:
    m = unique_measurement()
    url = write_url(influx, precision=precision)
    assert http("POST", url, body=f"{m} f=1 {timestamp}".encode(), headers=auth(influx))[0] == 204
    assert select(influx, m) == [[expected_ns, 1]]


def test_v2shim_field_type_conflict_is_v2_shaped_400(influx: Any) -> None:
    m = unique_measurement()
    assert (
        http("POST", write_url(influx), body=f"{m} f=1 1".encode(), headers=auth(influx))[0] == 204
    )
    status, headers, body = http(
        "POST", write_url(influx), body=f'{m} f="text" 2'.encode(), headers=auth(influx)
    )
    assert status == 400
    assert headers["Content-Type"].startswith("application/json")
    error = json.loads(body)
    assert error["code"] == "invalid"
    assert "field type conflict" in error["message"]


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"bucket": "no_such_bucket"}, 404, "not found"),
        ({"bucket": ""}, 400, "invalid"),
        ({"precision": "h"}, 400, "invalid"),
    ],
)
def test_v2shim_bad_write_targets(
    influx: Any, params: dict[str, str], status: int, code: str
) -> None:
    got_status, _, body = http(
        "POST", write_url(influx, **params), body=b"m f=1 1", headers=auth(influx)
    )
    assert got_status == status
    assert json.loads(body)["code"] == code


def test_v2shim_passes_queries_through(influx: Any) -> None:
    m = unique_measurement()
    assert (
        http("POST", write_url(influx), body=f"{m} f=3 3".encode(), headers=auth(influx))[0] == 204
    )
    q = {"db": influx.database, "q": f'SELECT "f" FROM "{m}"', "epoch": "ns"}
    status, _, body = http(
        "GET", f"{influx.write_url}/query?{urllib.parse.urlencode(q)}", headers=auth(influx)
    )
    assert status == 200
    assert json.loads(body)["results"][0]["series"][0]["values"] == [[3, 3]]
    form = urllib.parse.urlencode({"q": f'SELECT "f" FROM "{m}"'}).encode()
    status, _, body = http(
        "POST",
        f"{influx.write_url}/query?db={influx.database}",
        body=form,
        headers={**auth(influx), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 200
    assert json.loads(body)["results"][0]["series"][0]["values"][0][1] == 3


def test_v2shim_unreachable_target_is_503(tmp_path: Path) -> None:
    with V2WriteShim(
        target_url=f"http://127.0.0.1:{free_port()}", log_path=tmp_path / "shim.log"
    ) as shim:
        status, _, body = http("POST", f"{shim.url}/api/v2/write?org=o&bucket=b", body=b"m f=1 1")
    assert status == 503
    assert json.loads(body)["code"] == "unavailable"


def test_v2shim_token_stays_off_the_command_line(influx: Any) -> None:
    pid = influx.shim.pid
    assert pid is not None
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"composition.bench.v2shim" in cmdline
    assert influx.token.encode() not in cmdline
    assert influx.token not in influx.shim.log_path.read_text()


async def test_v2shim_error_reaches_influxdb_client_with_status(influx: Any) -> None:
    async with InfluxDBClientAsync(url=influx.write_url, token=influx.token, org=influx.org) as c:
        with pytest.raises(ApiException) as excinfo:
            await c.write_api().write(bucket="no_such_bucket", record="m f=1 1")
    assert excinfo.value.status == 404
