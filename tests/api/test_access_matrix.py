"""Every route x every role (anonymous and the four organisation kinds), from the route table.

The routes come from ``app.routes``: a route without a declared expectation fails
``test_matrix_declares_every_route``, so a new route cannot be forgotten. Each role calls
each route once with an id inside its scope and, where the route takes one, once with an id
outside it (which must answer 404 exactly like a missing id). Roles call with an API key
and, in a second run, with a browser session (CSRF header on unsafe methods).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from composition.api import create_app
from composition.api.broker import BrokerLink
from composition.delivery_scope import DeliveryScope
from composition.servers.mosquitto import MosquittoServer
from sealscope.accounts import Authenticator, Remit, Site
from sealscope.accounts.passwords import hash_password
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from sealscope.db import open_migrated
from sealscope.deadletters import SqliteDeadLetterStore
from sealscope.delivery import SqlOutbox, Subscription
from sealscope.registry import Device, SqliteDeviceRegistry
from sealscope.risk import MemoryRiskStore, RiskRow, RiskTable
from sealscope.storage.memory import MemoryTelemetryStore

ROLES = ("anonymous", "operator", "manufacturer", "monitoring_point", "admin")
PASSWORD = "correct horse battery staple"

# ACME-V-000001 is inside every organisation's scope; PUMPCO-P-000002 inside nobody's but
# the admin's (other site, other maker, other region and kind).
IN_DEVICE = Device("ACME-V-000001", "valve", "ACME", "BV-50", site="north", region="R1")
OUT_DEVICE = Device("PUMPCO-P-000002", "pump", "PumpCo", "P-80", site="south", region="R2")


def _row(dimension: str, group: str, makers: tuple[str, ...]) -> RiskRow:
    return RiskRow(
        dimension=dimension,  # type: ignore[arg-type]
        group=group,
        devices=10,
        events=3,
        exposure_days=100.0,
        rate_per_year=1.0,
        peer_devices=10,
        peer_events=1,
        peer_exposure_days=100.0,
        peer_rate_per_year=0.3,
        expected_events=1.0,
        rate_ratio=3.0,
        rate_ratio_low=1.0,
        rate_ratio_high=9.0,
        p_value=0.01,
        q_value=0.02,
        strength="moderate",
        flagged=True,
        manufacturers=makers,
    )


RISK_ROWS = (
    _row("region", "R1", ("ACME", "PumpCo")),
    _row("region", "R2", ("PumpCo",)),
    _row("manufacturer", "ACME", ("ACME",)),
    _row("manufacturer", "PumpCo", ("PumpCo",)),
    _row("model", "BV-50", ("ACME",)),
)


@dataclass
class World:
    keys: dict[str, str] = field(default_factory=dict)  # role -> API key
    users: dict[str, str] = field(default_factory=dict)  # role -> username
    orgs: dict[str, int] = field(default_factory=dict)  # role -> org id
    spare_keys: dict[str, str] = field(default_factory=dict)  # role -> a key id to revoke
    in_alert: int = 0
    out_alert: int = 0
    subscriptions: dict[str, str] = field(default_factory=dict)  # role -> its subscription
    spare_subscriptions: dict[str, str] = field(default_factory=dict)  # role -> one to delete
    deliveries: dict[str, str] = field(default_factory=dict)  # role -> a delivery id


@pytest.fixture
def broker(mosquitto: MosquittoServer) -> Iterator[BrokerLink]:
    link = BrokerLink(host=mosquitto.host, port=mosquitto.port)
    assert link.start(), "no connection to the test broker"
    yield link
    link.stop()


@pytest.fixture
def app(
    settings: Settings,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    dead_letters: SqliteDeadLetterStore,
    telemetry: MemoryTelemetryStore,
    authenticator: Authenticator,
    broker: BrokerLink,
) -> Any:
    """The conftest's app, with a broker for the command routes."""
    return create_app(
        settings,
        telemetry_store=telemetry,
        registry=registry,
        alerts=alerts,
        dead_letters=dead_letters,
        authenticator=authenticator,
        broker=broker,
    )


@pytest.fixture
def world(
    authenticator: Authenticator,
    registry: SqliteDeviceRegistry,
    alerts: SqliteAlertStore,
    app: Any,
    settings: Settings,
) -> Iterator[World]:
    store = authenticator.store
    w = World()
    codes = {"manufacturer": "ACME"}
    for role in ROLES[1:]:
        org = store.create_org(name=f"{role} org", kind=role, manufacturer_code=codes.get(role))  # type: ignore[arg-type]
        w.orgs[role] = org.id
        w.keys[role], _ = authenticator.create_key(org.id, name=f"{role} key")
        w.spare_keys[role] = authenticator.create_key(org.id, name="spare")[1].key_id
        w.users[role] = f"{role}.user"
        store.create_user(org_id=org.id, username=w.users[role], password_hash=PW_HASH)
    store.put_site(Site("north", w.orgs["operator"], "R1"))
    store.set_remit(w.orgs["monitoring_point"], Remit(frozenset({"R1"}), frozenset({"valve"})))
    registry.add(IN_DEVICE)
    registry.add(OUT_DEVICE)
    # each organisation subscribed (MQTT: no receiver needed); the alert below is in every
    # organisation's scope, so each subscription gets a delivery to redeliver
    engine = open_migrated(settings.database_url)
    scope = DeliveryScope(store, registry)
    outbox = SqlOutbox(engine, in_scope=scope.in_scope, risk_in_scope=scope.risk_in_scope)
    alerts.on_change(outbox.enqueue)
    for role in ROLES[1:]:
        for ids, n in ((w.subscriptions, 1), (w.spare_subscriptions, 2)):
            sub = Subscription(f"sub_{role}_{n}", str(w.orgs[role]), "mqtt", f"org-{role}")
            ids[role] = outbox.add_subscription(sub).id
    common = {"category": "maintenance_required", "severity": 3, "summary": "s", "t": 1.0}
    w.in_alert = alerts.raise_alert(
        device_id=IN_DEVICE.device_id, cause="seat_leak", evidence={}, **common
    ).id
    w.out_alert = alerts.raise_alert(
        device_id=OUT_DEVICE.device_id, cause="seat_leak", evidence={}, **common
    ).id
    for role, sub_id in w.subscriptions.items():
        w.deliveries[role] = outbox.deliveries(subscription_id=sub_id)[0].id
    app.state.risk_store = MemoryRiskStore()
    app.state.risk_store.save(RiskTable(1.0, 20, 4, 200.0, len(RISK_ROWS), RISK_ROWS))
    yield w
    engine.dispose()


PW_HASH = hash_password(PASSWORD)

A, OP, M, P, D = ROLES  # anonymous, operator, manufacturer, monitoring point, admin

# (method, path) -> (request builder, {role: status inside scope}, {role: status outside})
# A builder gets (world, role, inside: bool) and returns (url, json body or None).
Build = Callable[[World, str, bool], tuple[str, Any]]


def _fixed(url: str, body: Any = None) -> Build:
    return lambda w, role, inside: (url, body)


def _device(suffix: str = "") -> Build:
    return lambda w, role, inside: (
        f"/api/v1/devices/{(IN_DEVICE if inside else OUT_DEVICE).device_id}{suffix}",
        None,
    )


def _alert(suffix: str = "", body: Any = None) -> Build:
    return lambda w, role, inside: (
        f"/api/v1/alerts/{w.in_alert if inside else w.out_alert}{suffix}",
        body,
    )


def _org(suffix: str = "", body: Any = None) -> Build:
    return lambda w, role, inside: (f"/api/v1/orgs/{w.orgs['operator']}{suffix}", body)


def _own_key(w: World, role: str, inside: bool) -> tuple[str, Any]:
    # outside: another organisation's key through the own-keys route
    other = "manufacturer" if role != "manufacturer" else "operator"
    return f"/api/v1/keys/{w.spare_keys.get(role if inside else other, 'aaaaaaaaaaaa')}", None


def _org_key(w: World, role: str, inside: bool) -> tuple[str, Any]:
    return f"/api/v1/orgs/{w.orgs['operator']}/keys/{w.spare_keys['operator']}", None


def _other(role: str) -> str:
    return "manufacturer" if role != "manufacturer" else "operator"


def _subscription(suffix: str = "", spare: bool = False) -> Build:
    # outside: another organisation's subscription, which answers as missing (admin too)
    def build(w: World, role: str, inside: bool) -> tuple[str, Any]:
        ids = w.spare_subscriptions if spare else w.subscriptions
        sub = ids.get(role if inside else _other(role), "sub_none")
        return f"/api/v1/subscriptions/{sub}{suffix}", None

    return build


def _delivery(w: World, role: str, inside: bool) -> tuple[str, Any]:
    delivery = w.deliveries.get(role if inside else _other(role), "msg_none")
    return f"/api/v1/deliveries/{delivery}/redeliver", None


def _sign_in(w: World, role: str, inside: bool) -> tuple[str, Any]:
    username = w.users.get(role, "nobody")
    return "/api/v1/session", {"username": username, "password": PASSWORD}


def _all(ok: int, anon: int = 401) -> dict[str, int]:
    return {A: anon, OP: ok, M: ok, P: ok, D: ok}


def _only(ok: int, *roles: str) -> dict[str, int]:
    return {r: (401 if r == A else ok if r in roles else 403) for r in ROLES}


NEW_DEVICE = {"device_id": "ACME-V-000009", "kind": "valve", "manufacturer": "ACME", "model": "X"}
NEW_ROW = {"device_id": "ACME-V-000010", "kind": "valve", "model": "X"}
NOT_FOUND_OUTSIDE = {A: 401, OP: 404, M: 404, P: 404, D: 200}
NOT_OWN = {A: 401, OP: 404, M: 404, P: 404, D: 404}  # another organisation's, admin's too

MATRIX: dict[tuple[str, str], tuple[Build, dict[str, int], dict[str, int] | None]] = {
    ("GET", "/healthz"): (_fixed("/healthz"), _all(200, anon=200), None),
    ("GET", "/"): (_fixed("/"), _all(200, anon=200), None),
    ("GET", "/openapi.json"): (_fixed("/openapi.json"), _all(200), None),
    ("GET", "/docs"): (_fixed("/docs"), _all(200), None),
    ("GET", "/redoc"): (_fixed("/redoc"), _all(200), None),
    ("POST", "/api/v1/session"): (_sign_in, _all(200), None),
    ("GET", "/api/v1/session"): (_fixed("/api/v1/session"), _all(200), None),
    ("DELETE", "/api/v1/session"): (_fixed("/api/v1/session"), _all(204), None),
    ("GET", "/api/v1/devices"): (_fixed("/api/v1/devices"), _all(200), None),
    ("POST", "/api/v1/devices"): (
        _fixed("/api/v1/devices", NEW_DEVICE),
        _only(201, M, D),
        None,
    ),
    ("GET", "/static/{name:path}"): (_fixed("/static/app.js"), _all(200, anon=200), None),
    ("GET", "/api/v1/fleet/health"): (_fixed("/api/v1/fleet/health"), _all(200), None),
    ("GET", "/api/v1/devices/{device_id}/health"): (
        _device("/health"),
        _all(200),
        NOT_FOUND_OUTSIDE,
    ),
    ("GET", "/api/v1/devices/{device_id}"): (_device(), _all(200), NOT_FOUND_OUTSIDE),
    ("GET", "/api/v1/devices/{device_id}/telemetry"): (
        _device("/telemetry?field=p_in_kpa&every=1h"),
        _all(200),
        NOT_FOUND_OUTSIDE,
    ),
    ("GET", "/api/v1/alerts"): (_fixed("/api/v1/alerts"), _all(200), None),
    ("GET", "/api/v1/alerts/{alert_id}"): (_alert(), _all(200), NOT_FOUND_OUTSIDE),
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): (
        _alert("/acknowledge"),
        _only(200, OP, D),
        {A: 401, OP: 404, M: 403, P: 403, D: 200},
    ),
    ("GET", "/api/v1/alerts/{alert_id}/events"): (
        _alert("/events"),
        _all(200),
        NOT_FOUND_OUTSIDE,
    ),
    ("POST", "/api/v1/alerts/{alert_id}/assign"): (
        _alert("/assign", {"assignee": "tech-1"}),
        _only(200, OP, D),
        {A: 401, OP: 404, M: 403, P: 403, D: 200},
    ),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): (
        _alert("/resolve"),
        _only(200, OP, D),
        {A: 401, OP: 404, M: 403, P: 403, D: 200},
    ),
    ("GET", "/api/v1/dead-letters"): (_fixed("/api/v1/dead-letters"), _only(200, D), None),
    ("GET", "/api/v1/risk"): (_fixed("/api/v1/risk"), _only(200, M, P, D), None),
    # a risk group in every risk reader's scope (model BV-50: ACME's only); outside: region
    # R2, never a manufacturer's, and not in the monitoring point's remit
    ("GET", "/api/v1/risk/groups/{dimension}/{group}"): (
        lambda w, role, inside: (
            "/api/v1/risk/groups/" + ("model/BV-50" if inside else "region/R2"),
            None,
        ),
        _only(200, M, P, D),
        {A: 401, OP: 403, M: 404, P: 404, D: 200},
    ),
    # outside: the report of a manufacturer whose devices the caller does not see
    ("GET", "/api/v1/reports/quality"): (
        lambda w, role, inside: (
            "/api/v1/reports/quality?by="
            + ("model&format=csv" if inside else "manufacturer&group=PumpCo"),
            None,
        ),
        _only(200, M, P, D),
        {A: 401, OP: 403, M: 404, P: 404, D: 200},
    ),
    ("GET", "/api/v1/regions"): (_fixed("/api/v1/regions"), _all(200), None),
    ("GET", "/api/v1/fleet/models"): (
        lambda w, role, inside: (
            "/api/v1/fleet/models" + ("" if inside else "?manufacturer=PumpCo"),
            None,
        ),
        _only(200, M, P, D),
        {A: 401, OP: 403, M: 404, P: 404, D: 200},
    ),
    ("GET", "/api/v1/provisioning/uploads"): (
        _fixed("/api/v1/provisioning/uploads"),
        _only(200, M, D),
        None,
    ),
    ("GET", "/api/v1/keys"): (_fixed("/api/v1/keys"), _all(200), None),
    ("POST", "/api/v1/keys"): (_fixed("/api/v1/keys", {"name": "script"}), _all(201), None),
    ("DELETE", "/api/v1/keys/{key_id}"): (
        _own_key,
        _all(200),
        {A: 401, OP: 404, M: 404, P: 404, D: 404},
    ),
    ("POST", "/api/v1/orgs"): (
        _fixed("/api/v1/orgs", {"name": "new op", "kind": "operator"}),
        _only(201, D),
        None,
    ),
    ("GET", "/api/v1/orgs"): (_fixed("/api/v1/orgs"), _only(200, D), None),
    ("GET", "/api/v1/orgs/{org_id}"): (_org(), _only(200, D), None),
    ("PUT", "/api/v1/orgs/{org_id}/remit"): (
        lambda w, role, inside: (
            f"/api/v1/orgs/{w.orgs['monitoring_point']}/remit",
            {"regions": ["R1", "R3"], "kinds": ["valve"]},
        ),
        _only(200, D),
        None,
    ),
    ("POST", "/api/v1/orgs/{org_id}/users"): (
        _org("/users", {"username": "new.tech", "password": PASSWORD}),
        _only(201, D),
        None,
    ),
    ("GET", "/api/v1/orgs/{org_id}/users"): (_org("/users"), _only(200, D), None),
    ("POST", "/api/v1/orgs/{org_id}/keys"): (_org("/keys", {"name": "k"}), _only(201, D), None),
    ("GET", "/api/v1/orgs/{org_id}/keys"): (_org("/keys"), _only(200, D), None),
    ("DELETE", "/api/v1/orgs/{org_id}/keys/{key_id}"): (_org_key, _only(200, D), None),
    ("PUT", "/api/v1/sites/{name}"): (
        lambda w, role, inside: (
            "/api/v1/sites/east",
            {"operator_id": w.orgs["operator"], "region": "R1"},
        ),
        _only(200, D),
        None,
    ),
    ("GET", "/api/v1/sites"): (_fixed("/api/v1/sites"), _only(200, OP, D), None),
    ("POST", "/api/v1/provisioning/devices"): (
        _fixed("/api/v1/provisioning/devices?manufacturer=ACME", [NEW_ROW]),
        _only(200, M, D),
        None,
    ),
    # upload 1 is the one the POST above made in this same run (routes run in table order);
    # an upload id nobody made answers 404 like another manufacturer's
    ("GET", "/api/v1/provisioning/uploads/{upload_id}"): (
        lambda w, role, inside: (
            f"/api/v1/provisioning/uploads/{1 if inside else 999}?manufacturer=ACME",
            None,
        ),
        _only(200, M, D),
        {A: 401, OP: 403, M: 404, P: 403, D: 404},
    ),
    # a wrong claim code: allowed callers get the code's 404, the others never get that far
    ("POST", "/api/v1/devices/claim"): (
        _fixed(
            "/api/v1/devices/claim",
            {"device_id": IN_DEVICE.device_id, "claim_code": "AAAAA-AAAAA", "site": "north"},
        ),
        {A: 401, OP: 404, M: 403, P: 403, D: 404},
        None,
    ),
    ("POST", "/api/v1/subscriptions"): (
        _fixed("/api/v1/subscriptions", {"channel": "mqtt"}),
        _all(201),
        None,
    ),
    ("GET", "/api/v1/subscriptions"): (_fixed("/api/v1/subscriptions"), _all(200), None),
    ("GET", "/api/v1/subscriptions/{subscription_id}"): (_subscription(), _all(200), NOT_OWN),
    ("DELETE", "/api/v1/subscriptions/{subscription_id}"): (
        _subscription(spare=True),
        _all(204),
        NOT_OWN,
    ),
    ("GET", "/api/v1/subscriptions/{subscription_id}/deliveries"): (
        _subscription("/deliveries"),
        _all(200),
        NOT_OWN,
    ),
    ("POST", "/api/v1/deliveries/{delivery_id}/redeliver"): (_delivery, _all(200), NOT_OWN),
    # device commands: the technicians of the device's site (and the admin); published to
    # the session's real Mosquitto (time_sync: the outside device is a pump)
    ("POST", "/api/v1/devices/{device_id}/commands"): (
        lambda w, role, inside: (
            f"/api/v1/devices/{(IN_DEVICE if inside else OUT_DEVICE).device_id}/commands",
            {"name": "time_sync", "ttl_s": 3600},
        ),
        _only(202, OP, D),
        {A: 401, OP: 404, M: 403, P: 403, D: 202},
    ),
    ("GET", "/api/v1/devices/{device_id}/commands"): (
        _device("/commands"),
        _only(200, OP, D),
        {A: 401, OP: 404, M: 403, P: 403, D: 200},
    ),
    # the live stream, ended by the server after a moment so the call returns
    ("GET", "/api/v1/stream"): (_fixed("/api/v1/stream?lifetime_s=0.05"), _all(200), None),
}


def _routes(app: Any) -> Iterator[tuple[str, str]]:
    for route in iter_route_contexts(app.routes):
        for method in sorted(route.methods or ()):
            if method != "HEAD":  # Starlette adds HEAD to every GET
                yield method, route.path


def test_matrix_declares_every_route(app: Any) -> None:
    routes = set(_routes(app))
    assert routes - MATRIX.keys() == set(), "routes with no declared access expectation"
    assert MATRIX.keys() - routes == set(), "declared routes that no longer exist"


def _sign_in_session(client: TestClient, world: World, role: str) -> dict[str, str]:
    response = client.post(
        "/api/v1/session", json={"username": world.users[role], "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return {"X-CSRF-Token": response.json()["csrf_token"]}


@pytest.mark.parametrize(
    ("role", "via"),
    [("anonymous", "none"), *itertools.product(ROLES[1:], ("key", "session"))],
)
def test_matrix_every_route_answers_as_declared(
    app: Any, client: TestClient, world: World, role: str, via: str
) -> None:
    caller = TestClient(app)  # the admin ``client`` holds the lifespan open
    if via == "key":
        caller.headers["Authorization"] = f"Bearer {world.keys[role]}"
    elif via == "session":
        caller.headers.update(_sign_in_session(caller, world, role))
    wrong: list[str] = []
    # sign-out last: it ends the session the other requests ride on
    routes = sorted(_routes(app), key=lambda r: r == ("DELETE", "/api/v1/session"))
    for method, path in routes:
        build, inside, outside = MATRIX[(method, path)]
        for is_inside, expected in ((True, inside), (False, outside)):
            if expected is None:
                continue
            url, body = build(world, role, is_inside)
            response = caller.request(method, url, json=body)
            if via == "session" and (method, path) == ("POST", "/api/v1/session"):
                caller.headers["X-CSRF-Token"] = response.json()["csrf_token"]  # new cookie
            want = expected[role]
            if response.status_code != want:
                where = "inside" if is_inside else "outside"
                wrong.append(f"{method} {url} ({where}): {response.status_code}, want {want}")
            if want == 404 and not is_inside:
                # outside the scope reads exactly as missing
                assert response.json()["error"] == "not_found", url
    assert wrong == []
