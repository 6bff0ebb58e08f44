"""The plugin's first config file: the admin client, the fixed roles, deny by default.

The plugin needs the file to exist at start (2.0.11 creates none) and owns it from then
on, rewriting it after every command. Passwords are stored as the plugin stores them:
PBKDF2-HMAC-SHA512, 101 iterations, a random 12-byte salt, both base64.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

from sealscope.broker_admin.control import CONTROL_TOPIC
from sealscope.broker_admin.roles import DEFAULT_ACL_ACCESS, initial_roles

__all__ = ["ADMIN_ROLE", "hashed_password", "write_initial_config"]

ADMIN_ROLE = "sealscope-broker-admin"
_ITERATIONS = 101  # what the 2.0.x plugin itself uses for new passwords


def hashed_password(password: str) -> dict[str, Any]:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _ITERATIONS)
    return {
        "password": base64.b64encode(digest).decode(),
        "salt": base64.b64encode(salt).decode(),
        "iterations": _ITERATIONS,
    }


def write_initial_config(path: Path, *, admin_username: str, admin_password: str) -> None:
    """Write a new config (0600); refuses to overwrite one the plugin may already own."""
    if not admin_username or not admin_password:
        raise ValueError("admin username and password are required")
    control = f"{CONTROL_TOPIC.rsplit('/', 1)[0]}/#"
    admin_acls = [
        {"acltype": t, "topic": control, "allow": True, "priority": 0}
        for t in ("publishClientSend", "publishClientReceive", "subscribePattern")
    ]
    roles = [{"rolename": ADMIN_ROLE, "acls": admin_acls}]
    roles += [{"rolename": name, "acls": acls} for name, acls in initial_roles().items()]
    config = {
        "clients": [
            {
                "username": admin_username,
                "textname": "sealscope broker admin",
                "roles": [{"rolename": ADMIN_ROLE}],
                **hashed_password(admin_password),
            }
        ],
        "groups": [],
        "roles": roles,
        "defaultACLAccess": DEFAULT_ACL_ACCESS,
    }
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(config, f, indent=1)
