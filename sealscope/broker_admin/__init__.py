"""Per-device MQTT identities on a running Mosquitto (dynamic-security plugin).

Usage, with the plugin loaded and its config written by ``write_initial_config``::

    with DynsecControl(host=..., port=..., username="admin", password=...) as control:
        admin = BrokerAdmin(control)
        passwords = admin.provision_devices(["ACME-V-000001", "ACME-V-000002"])
        # {"ACME-V-000001": "<password>", ...}: shown once, never stored by sealscope
        admin.provision_service("ingest")            # -> password of sealscope-ingest
        admin.provision_monitoring_point("mp:yongjia", "region/yongjia")
        admin.revoke_devices(["ACME-V-000002"])      # connected device is kicked

API for bulk provisioning (``BrokerAdmin``):

- ``provision_devices(device_ids) -> dict[device_id, password]``: idempotent; an existing
  device gets a new password, its client id bound again, its role restored, and is
  enabled. Username = client id = device id (other client ids are refused at CONNECT).
- ``ensure_roles()``: default deny and the fixed roles, on a config that
  ``write_initial_config`` did not write (``mosquitto_ctrl dynsec init``); idempotent.
- ``rotate_device_password``, ``disable_device``, ``enable_device``, ``revoke_devices``.
- ``provision_service(kind)`` (ingest, gateway, api, health), ``provision_monitoring_point``.
- Errors: ``BrokerAdminError`` (a command refused), ``BrokerAdminUnavailable`` (no
  connection or no answer: commands may have been applied; re-running is safe),
  ``TopicRejected`` for an invalid device id (before anything is sent).

What confines a device to its own topics is the broker's ``acl_file`` holding
``roles.DEVICE_ACL_PATTERNS`` (Mosquitto 2.0.11's dynsec ACLs cannot say "%u"; see
``roles``). Cost on 2.0.11: the plugin rewrites its whole config after every command, so
n devices cost O(n^2) broker time and block the broker while a chunk runs
(``control``); 10,000 devices take minutes, not seconds (figures in deploy/README.md).
A bulk route should return the passwords at once and apply them in the background.
"""

from sealscope.broker_admin.admin import BrokerAdmin, new_password
from sealscope.broker_admin.config_file import ADMIN_ROLE, hashed_password, write_initial_config
from sealscope.broker_admin.control import CONTROL_TOPIC, RESPONSE_TOPIC, DynsecControl
from sealscope.broker_admin.roles import (
    DEVICE_ACL_PATTERNS,
    DEVICE_ROLE,
    SERVICE_ROLES,
    ServiceKind,
    monitoring_point_role,
    service_role_name,
)

__all__ = [
    "ADMIN_ROLE",
    "CONTROL_TOPIC",
    "DEVICE_ACL_PATTERNS",
    "DEVICE_ROLE",
    "RESPONSE_TOPIC",
    "SERVICE_ROLES",
    "BrokerAdmin",
    "DynsecControl",
    "ServiceKind",
    "hashed_password",
    "monitoring_point_role",
    "new_password",
    "service_role_name",
    "write_initial_config",
]
