"""``BrokerAdmin``: sealscope's broker identities, managed while the broker runs.

Every operation is idempotent: provisioning a device that exists gives it a new password,
binds its client id again, restores its role and enables it. Changes apply at once; a
device deleted, disabled or given a new password is disconnected by the plugin.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sealscope.broker_admin.control import Command, DynsecControl, Response
from sealscope.broker_admin.roles import (
    DEFAULT_ACL_ACCESS,
    DEVICE_ROLE,
    SERVICE_ROLES,
    ServiceKind,
    initial_roles,
    monitoring_point_role,
    service_role_name,
)
from sealscope.errors import BrokerAdminError, ConfigError
from sealscope.topics import check_device_id

__all__ = ["BrokerAdmin", "new_password"]

_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{2,99}")
_CLIENT_EXISTS = "Client already exists"
_CLIENT_NOT_FOUND = "Client not found"
_ROLE_EXISTS = "Role already exists"
_ACL_EXISTS = "ACL with this topic already exists"


def new_password() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


def _raise_errors(
    commands: Sequence[Command], responses: Sequence[Response], *, tolerated: frozenset[str]
) -> None:
    for command, response in zip(commands, responses, strict=True):
        error = response.get("error")
        if error and error not in tolerated:
            target = command.get("username") or command.get("rolename")
            raise BrokerAdminError(str(error), command=command["command"], target=target)


def _modify(username: str, password: str, role: str, *, clientid: str = "") -> Command:
    # one command sets the password, the client id ("" unbinds) and the whole role list;
    # 2.0.11 answers addClientRole for a role the client already has with "Internal error"
    return {
        "command": "modifyClient",
        "username": username,
        "password": password,
        "clientid": clientid,
        "roles": [{"rolename": role}],
    }


class BrokerAdmin:
    """Manage devices, services and monitoring points through one ``DynsecControl``."""

    def __init__(self, control: DynsecControl) -> None:
        self.control = control

    def run(self, commands: Sequence[Command], *, tolerated: Iterable[str] = ()) -> list[Response]:
        responses = self.control.execute(commands)
        _raise_errors(commands, responses, tolerated=frozenset(tolerated))
        return responses

    # roles ---------------------------------------------------------------------------

    def ensure_role(self, rolename: str, acls: Sequence[dict[str, Any]]) -> None:
        """Create the role, or add any of its ACLs an existing role lacks."""
        (created,) = self.run(
            [{"command": "createRole", "rolename": rolename, "acls": list(acls)}],
            tolerated={_ROLE_EXISTS},
        )
        if created.get("error") == _ROLE_EXISTS and acls:
            self.run(
                [{"command": "addRoleACL", "rolename": rolename, **acl} for acl in acls],
                tolerated={_ACL_EXISTS},
            )

    def ensure_roles(self) -> None:
        """Default deny, the device and service roles (as ``write_initial_config`` writes
        them), for a config made otherwise, e.g. by ``mosquitto_ctrl dynsec init``."""
        self.run(
            [
                {
                    "command": "setDefaultACLAccess",
                    "acls": [{"acltype": k, "allow": v} for k, v in DEFAULT_ACL_ACCESS.items()],
                }
            ]
        )
        for name, acls in initial_roles().items():
            self.ensure_role(name, acls)

    # devices -------------------------------------------------------------------------

    def provision_devices(self, device_ids: Iterable[str]) -> dict[str, str]:
        """Create or refresh one identity per device; returns device id -> new password.

        Username and client id are the device id (a device connecting with any other
        client id is refused). The passwords exist only in the returned dict: hand them
        out once. Invalid ids raise ``TopicRejected`` before anything is sent.
        """
        ids = list(dict.fromkeys(check_device_id(d) for d in device_ids))
        passwords = {d: new_password() for d in ids}
        self.set_device_passwords(passwords)
        return passwords

    def set_device_passwords(self, passwords: Mapping[str, str]) -> None:
        """``provision_devices`` with passwords chosen by the caller (issued earlier and
        applied later, e.g. in the background after an upload answered)."""
        ids = [check_device_id(d) for d in passwords]
        creates = [
            {
                "command": "createClient",
                "username": d,
                "password": passwords[d],
                "clientid": d,
                "roles": [{"rolename": DEVICE_ROLE}],
            }
            for d in ids
        ]
        responses = self.run(creates, tolerated={_CLIENT_EXISTS})
        existing = [d for d, r in zip(ids, responses, strict=True) if r.get("error")]
        if existing:
            self._refresh_devices({d: passwords[d] for d in existing})

    def _refresh_devices(self, passwords: dict[str, str]) -> None:
        commands: list[Command] = []
        for device_id, password in passwords.items():
            commands += [
                _modify(device_id, password, DEVICE_ROLE, clientid=device_id),
                {"command": "enableClient", "username": device_id},
            ]
        self.run(commands)

    def rotate_device_password(self, device_id: str) -> str:
        """A new password; the device's current connection is dropped."""
        password = new_password()
        self.run(
            [
                {
                    "command": "setClientPassword",
                    "username": check_device_id(device_id),
                    "password": password,
                }
            ]
        )
        return password

    def disable_device(self, device_id: str) -> None:
        self.run([{"command": "disableClient", "username": check_device_id(device_id)}])

    def enable_device(self, device_id: str) -> None:
        self.run([{"command": "enableClient", "username": check_device_id(device_id)}])

    def revoke_devices(self, device_ids: Iterable[str]) -> None:
        """Delete the identities (connected ones are kicked); unknown ids are no error."""
        ids = [check_device_id(d) for d in device_ids]
        self.run(
            [{"command": "deleteClient", "username": d} for d in ids],
            tolerated={_CLIENT_NOT_FOUND},
        )

    # services and monitoring points ----------------------------------------------------

    def provision_service(self, kind: ServiceKind, username: str | None = None) -> str:
        """An identity for a sealscope process; returns its new password.

        Services choose their client ids (one service runs several connections), so none
        is bound; usernames start with ``sealscope-``, which device ids must not.
        """
        if kind not in SERVICE_ROLES:
            raise ConfigError("kind", f"{kind!r} is not one of {sorted(SERVICE_ROLES)}")
        username = username or f"sealscope-{kind}"
        if not username.startswith("sealscope-"):
            raise ConfigError("username", "service usernames start with 'sealscope-'")
        role = service_role_name(kind)
        self.ensure_role(role, SERVICE_ROLES[kind])
        return self._upsert_client(username, role)

    def provision_monitoring_point(self, username: str, scope: str) -> str:
        """A read-only identity for ``sealscope/v1/alerts/{scope}``; returns its password."""
        if not username.startswith("mp:") or username == "mp:":
            # ':' never occurs in a device id, so no device pattern can name this user
            raise ConfigError("username", "monitoring point usernames are 'mp:<name>'")
        role, acls = monitoring_point_role(scope)
        self.ensure_role(role, acls)
        return self._upsert_client(username, role)

    def delete_client(self, username: str) -> None:
        self.run([{"command": "deleteClient", "username": username}], tolerated={_CLIENT_NOT_FOUND})

    def _upsert_client(self, username: str, role: str) -> str:
        if not _USERNAME.fullmatch(username):
            raise ConfigError("username", f"{username!r} must match {_USERNAME.pattern}")
        password = new_password()
        (created,) = self.run(
            [
                {
                    "command": "createClient",
                    "username": username,
                    "password": password,
                    "roles": [{"rolename": role}],
                }
            ],
            tolerated={_CLIENT_EXISTS},
        )
        if created.get("error"):
            self.run(
                [
                    _modify(username, password, role),
                    {"command": "enableClient", "username": username},
                ]
            )
        return password

    def get_client(self, username: str) -> dict[str, Any]:
        (response,) = self.run([{"command": "getClient", "username": username}])
        client: dict[str, Any] = response["data"]["client"]
        return client
