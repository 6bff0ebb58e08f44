"""Arbitrary bytes and hostile JSON as the body of every POST route, over real HTTP.

Each must be refused with a 4xx in the error shape, change nothing, and leave the server
answering: a good request right after it still succeeds. Routes are read from the app, so a
new POST route is fuzzed without touching this file.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from composition.api import create_app
from composition.api.body import DEFAULT_MAX_BODY_BYTES
from sealscope.config import Settings

FUZZ_EXAMPLES = int(os.environ.get("SEALSCOPE_FUZZ_EXAMPLES", "25"))
_ids = itertools.count(1)
_deliveries: list[str] = []  # one the http fixture made


def _post_routes() -> list[str]:
    # an app that is never started: its OpenAPI lists the routes without opening a store
    app = create_app(Settings(data_dir=Path(tempfile.gettempdir()) / "sealscope-never-opened"))
    return sorted(path for path, ops in app.openapi()["paths"].items() if "post" in ops)


def _optional_body_routes() -> frozenset[str]:
    app = create_app(Settings(data_dir=Path(tempfile.gettempdir()) / "sealscope-never-opened"))
    paths = app.openapi()["paths"].items()
    bodies = {path: ops["post"].get("requestBody") for path, ops in paths if "post" in ops}
    # OpenAPI's default for "required" is false
    return frozenset(p for p, body in bodies.items() if body and not body.get("required", False))


POST_ROUTES = _post_routes()
assert POST_ROUTES, "no POST route found: the fuzz would pass by testing nothing"
# where the body is optional, an empty object (or null, "no body") is a good request
OPTIONAL_BODY_ROUTES = _optional_body_routes()
_EMPTY_BODIES = (b"{}", b"null")


@pytest.fixture(scope="module")
def http(live_api: Any) -> Iterator[httpx.Client]:
    admin = {"Authorization": f"Bearer {live_api.keys['admin']}"}
    with httpx.Client(base_url=live_api.url, timeout=30, headers=admin) as client:
        # a delivery to redeliver: subscribe, then change an alert no other route acts on
        sub = client.post("/api/v1/subscriptions", json={"channel": "mqtt"}).json()["id"]
        client.post(f"/api/v1/alerts/{live_api.alert_ids[5]}/resolve")
        log = client.get(f"/api/v1/subscriptions/{sub}/deliveries").json()["data"]
        _deliveries.append(log[0]["id"])
        yield client


def _url(route: str, live_api: Any) -> str:
    # resolve acts on its own alert, so acknowledge's and assign's stay unresolved
    acts_on = {"/acknowledge": 0, "/assign": 2}
    alert_id = live_api.alert_ids[next((i for k, i in acts_on.items() if route.endswith(k)), 1)]
    delivery = _deliveries[0] if _deliveries else "msg_none"
    return (
        route.replace("{alert_id}", str(alert_id))
        .replace("{org_id}", str(live_api.operator_id))
        .replace("{delivery_id}", delivery)
        .replace("{device_id}", live_api.device_ids[0])  # a valve
    )


def _good_body(route: str, live_api: Any) -> Any:
    n = next(_ids)
    return {
        "/api/v1/session": {"username": live_api.user[0], "password": live_api.user[1]},
        "/api/v1/keys": {"name": f"fuzz {n}"},
        "/api/v1/orgs": {"name": f"fuzz org {n}", "kind": "operator"},
        "/api/v1/orgs/{org_id}/users": {"username": f"fuzz{n}", "password": "p" * 12},
        "/api/v1/orgs/{org_id}/keys": {"name": f"fuzz {n}"},
        "/api/v1/subscriptions": {"channel": "mqtt"},
        "/api/v1/devices/{device_id}/commands": {"name": "stroke_test", "ttl_s": 600},
    }.get(route)


def _is_accepted(route: str, body: bytes, content_type: str | None) -> bool:
    return (
        route in OPTIONAL_BODY_ROUTES
        and body in _EMPTY_BODIES
        and (content_type or "").startswith("application/json")
    )


def _good_request(http: httpx.Client, route: str, live_api: Any) -> None:
    url = _url(route, live_api)
    if route == "/api/v1/devices":
        device_id = f"FUZZ-{next(_ids):06d}"
        payload = {"device_id": device_id, "kind": "valve", "manufacturer": "f", "model": "m"}
        response = http.post(url, json=payload)
        assert response.status_code == 201, response.text
        assert http.get(f"{url}/{device_id}").status_code == 200
    elif route.endswith("/assign"):
        response = http.post(url, json={"assignee": f"tech-{next(_ids)}"})
        assert response.status_code == 200, response.text
    elif route in ("/api/v1/provisioning/devices", "/api/v1/devices/claim"):
        # the admin provisions for a manufacturer it names, and may claim into any site
        device_id = f"FUZZ-P-{next(_ids):06d}"
        row = {"device_id": device_id, "kind": "valve", "model": "m"}
        response = http.post(
            "/api/v1/provisioning/devices", params={"manufacturer": "f"}, json=[row]
        )
        assert response.status_code == 200, response.text
        if route == "/api/v1/devices/claim":
            code = response.json()["credentials_csv"].splitlines()[1].split(",")[-1]
            claim = {"device_id": device_id, "claim_code": code, "site": "north"}
            response = http.post(url, json=claim)
            assert response.status_code == 200, response.text
    else:
        body = _good_body(route, live_api)
        response = http.post(url) if body is None else http.post(url, json=body)
        assert response.status_code in (200, 201, 202), response.text


def _assert_refused(response: httpx.Response, sent: int) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) >= {"error", "message"}
    # the answer is small whatever was sent: nothing comes back whole
    assert len(response.content) < 12_000, (sent, len(response.content))


def _devices_count(http: httpx.Client) -> int:
    return len(http.get("/api/v1/devices", params={"limit": 1000}).json()["data"])


def _deep(n: int) -> bytes:
    return b'{"a":' * n + b"1" + b"}" * n


HOSTILE = {
    "truncated": b'{"device_id": "ACME-9',
    "deep": _deep(5_000),
    "deep_list": b"[" * 200_000,
    "dup": b'{"device_id":"ACME-7777","kind":"valve","kind":"pump","manufacturer":"a","model":"m"}',
    "nan": b'{"device_id":"ACME-7778","kind":"valve","manufacturer":"a","model":"m","dn":NaN}',
    "huge_int": b'{"dn":' + b"9" * 100_000 + b"}",
    "huge_float": b'{"dn":1e400}',
    "surrogate": b'{"device_id":"ACME-7779","kind":"valve","manufacturer":"\\udc00","model":"m"}',
    "giant_array": b"[" + b"0," * 500_000 + b"0]",
    "over_cap": b'{"x":"' + b"y" * DEFAULT_MAX_BODY_BYTES + b'"}',
    "not_utf8": b'{"device_id":"\xc3\x28"}',
    "bom": b"\xef\xbb\xbf{}",
    "utf16": '{"a":1}'.encode("utf-16"),
    "null": b"null",
    "number": b"1",
    "string": b'"x"',
    "empty_object": b"{}",
    "bool_dn": b'{"device_id":"ACME-7780","kind":"valve","manufacturer":"a","model":"m","dn":true}',
}


@pytest.mark.parametrize("route", POST_ROUTES)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_post_route_refuses_hostile_json_then_still_works(
    http: httpx.Client, live_api: Any, route: str, name: str
) -> None:
    before = _devices_count(http)
    body = HOSTILE[name]
    response = http.post(
        _url(route, live_api), content=body, headers={"content-type": "application/json"}
    )
    if _is_accepted(route, body, "application/json"):
        assert response.status_code == 200, response.text
    else:
        _assert_refused(response, len(body))
    assert _devices_count(http) == before
    _good_request(http, route, live_api)


@pytest.mark.parametrize("route", POST_ROUTES)
def test_post_route_refuses_arbitrary_bytes_then_still_works(
    http: httpx.Client, live_api: Any, route: str
) -> None:
    content_types = st.sampled_from(
        [
            None,
            "application/json",
            "application/json; charset=utf-8",
            "text/plain",
            "application/octet-stream",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ]
    )
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
        ),
        max_leaves=30,
    )
    bodies = st.binary(min_size=1, max_size=4096) | json_values.map(
        lambda v: json.dumps(v).encode()
    )

    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(body=bodies, content_type=content_types)
    def fuzz(body: bytes, content_type: str | None) -> None:
        headers = {} if content_type is None else {"content-type": content_type}
        response = http.post(_url(route, live_api), content=body, headers=headers)
        if _is_accepted(route, body, content_type):
            assert response.status_code == 200, response.text
        else:
            _assert_refused(response, len(body))
        _good_request(http, route, live_api)

    fuzz()
