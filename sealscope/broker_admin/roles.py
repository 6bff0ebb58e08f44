"""The broker identities sealscope hands out and what each may do, as dynsec roles.

Mosquitto 2.0.11's dynamic-security ACLs have no ``%u``/``%c`` substitution (it arrives in
2.1), so one shared dynsec role cannot confine each device to its own topics. Instead a
device's dynsec role grants nothing: with ``publishClientSend``/``subscribe`` denied by
default, dynsec *defers* the decision and the broker's ``acl_file`` answers it with the
``pattern`` lines below, which never change. A device therefore costs one dynsec client
and no role of its own (a role per device would double the entries the plugin rewrites
after every command). Service and monitoring-point roles grant explicitly and end in
explicit denies, so nothing of theirs falls through to the acl_file.
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

from sealscope.topics import PREFIX

__all__ = [
    "DEFAULT_ACL_ACCESS",
    "DEVICE_ACL_PATTERNS",
    "DEVICE_ROLE",
    "SERVICE_ROLES",
    "ServiceKind",
    "initial_roles",
    "monitoring_point_role",
    "service_role_name",
]

ServiceKind = Literal["ingest", "gateway", "api", "health"]
DEVICE_ROLE: Final = "sealscope-device"
DEV: Final = f"{PREFIX}/dev"

# acl_file lines (the broker config's ``acl_file``): a device publishes its uplinks and
# reads its commands, nothing else. %u is the username, which is the device id; dynsec
# binds the client id to it as well.
DEVICE_ACL_PATTERNS: Final = (
    f"pattern write {DEV}/%u/telemetry",
    f"pattern write {DEV}/%u/event",
    f"pattern write {DEV}/%u/state",
    f"pattern read {DEV}/%u/cmd",
)

Acl = dict[str, Any]
_SCOPE = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


def _acl(acltype: str, topic: str, *, allow: bool = True) -> Acl:
    # grants are checked before the catch-all denies (higher priority first)
    return {"acltype": acltype, "topic": topic, "allow": allow, "priority": 1 if allow else 0}


# Without them dynsec would defer what a role does not grant to the acl_file, which
# allows any SUBSCRIBE (it checks reads at delivery) and the device patterns for %u.
_DENY_REST: Final = [
    _acl("subscribePattern", "#", allow=False),
    _acl("publishClientReceive", "#", allow=False),
    _acl("publishClientSend", "#", allow=False),
]


def _publish(*topics: str) -> list[Acl]:
    return [_acl("publishClientSend", t) for t in topics]


def _subscribe(*filters: str) -> list[Acl]:
    # the filter a client subscribes with, and delivery of what matches it; shared
    # subscriptions are checked with their $share/<group>/ prefix in 2.0.11
    acls = []
    for f in filters:
        acls += [
            _acl("subscribePattern", f),
            _acl("subscribePattern", f"$share/+/{f}"),
            _acl("publishClientReceive", f),
        ]
    return acls


SERVICE_ROLES: Final[dict[ServiceKind, list[Acl]]] = {
    # every uplink (alone or in a shared group); commands out, alerts out
    "ingest": _subscribe(f"{DEV}/#") + _publish(f"{DEV}/+/cmd", f"{PREFIX}/alerts/#") + _DENY_REST,
    # speaks for every device over NB-IoT and takes their commands
    "gateway": _publish(
        f"{DEV}/+/telemetry", f"{DEV}/+/event", f"{DEV}/+/state", f"{DEV}/+/cmd/status"
    )
    + _subscribe(f"{DEV}/+/cmd")
    + _DENY_REST,
    # queues commands and publishes alerts (the delivery dispatcher's MQTT channel)
    "api": _subscribe(f"{DEV}/#") + _publish(f"{DEV}/+/cmd", f"{PREFIX}/alerts/#") + _DENY_REST,
    # the broker's healthcheck: one $SYS topic, nothing else
    "health": [
        _acl("subscribeLiteral", "$SYS/broker/uptime"),
        _acl("publishClientReceive", "$SYS/broker/uptime"),
        *_DENY_REST,
    ],
}


def service_role_name(kind: ServiceKind) -> str:
    return f"sealscope-{kind}"


def monitoring_point_role(scope: str) -> tuple[str, list[Acl]]:
    """Read-only role for ``sealscope/v1/alerts/{scope}`` and below; publishes nothing."""
    if not _SCOPE.fullmatch(scope) or len(scope) > 200:
        raise ValueError(f"alert scope {scope!r} must be path segments of [A-Za-z0-9._-]")
    topic = f"{PREFIX}/alerts/{scope}"
    acls = [_acl("subscribeLiteral", topic), _acl("publishClientReceive", topic)]
    acls += [_acl("subscribePattern", f"{topic}/#"), _acl("publishClientReceive", f"{topic}/#")]
    acls += _DENY_REST
    return f"sealscope-alerts:{scope}", acls


# everything a role does not grant is refused: dynsec defers it to the acl_file (which
# holds only the device patterns); unsubscribing is always harmless
DEFAULT_ACL_ACCESS: Final = {
    "publishClientSend": False,
    "publishClientReceive": False,
    "subscribe": False,
    "unsubscribe": True,
}


def initial_roles() -> dict[str, list[Acl]]:
    """Every fixed role by name: the device role (no grants) and the service roles."""
    # the device role grants nothing (the acl_file's patterns do); it only keeps devices
    # off the admin topics, which the acl_file would let them subscribe to
    device_acls = [
        _acl("subscribePattern", "$CONTROL/#", allow=False),
        _acl("publishClientReceive", "$CONTROL/#", allow=False),
    ]
    roles: dict[str, list[Acl]] = {DEVICE_ROLE: device_acls}
    roles.update({service_role_name(k): acls for k, acls in SERVICE_ROLES.items()})
    return roles
