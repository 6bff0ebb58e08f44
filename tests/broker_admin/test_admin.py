"""BrokerAdmin against a real Mosquitto with the dynamic-security plugin."""

from __future__ import annotations

import queue
import uuid

import pytest

from sealscope.broker_admin import BrokerAdmin, DynsecControl
from sealscope.broker_admin.roles import DEFAULT_ACL_ACCESS, SERVICE_ROLES
from sealscope.errors import BrokerAdminError, BrokerAdminUnavailable, ConfigError, TopicRejected
from sealscope.topics import alerts_topic, device_topic
from tests.broker_admin.broker import WAIT_S, DynsecBroker, Session

NOT_AUTHORIZED = "Not authorized"  # MQTT 5 reason code 0x87


@pytest.fixture(scope="module")
def admin(dynsec_broker: DynsecBroker):  # type: ignore[no-untyped-def]
    with dynsec_broker.control() as control:
        yield BrokerAdmin(control)


def _ids(n: int) -> list[str]:
    prefix = uuid.uuid4().hex[:6].upper()
    return [f"T{prefix}-{i:06d}" for i in range(n)]


def test_provision_devices_returns_one_password_per_distinct_device(admin: BrokerAdmin) -> None:
    ids = _ids(3)
    passwords = admin.provision_devices([*ids, ids[0]])
    assert list(passwords) == ids
    assert len(set(passwords.values())) == 3
    client = admin.get_client(ids[1])
    assert client["clientid"] == ids[1]
    assert [r["rolename"] for r in client["roles"]] == ["sealscope-device"]


def test_provision_devices_rejects_invalid_ids_before_sending(admin: BrokerAdmin) -> None:
    good = _ids(1)[0]
    with pytest.raises(TopicRejected):
        admin.provision_devices([good, "bad/id#"])
    with pytest.raises(BrokerAdminError, match="Client not found"):
        admin.get_client(good)


def test_device_publishes_own_topics_and_is_refused_on_another_id(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    me, other = _ids(2)
    passwords = admin.provision_devices([me, other])
    with Session(dynsec_broker, me, passwords[me], me) as device:
        assert device.connect() == "Success"
        for kind in ("telemetry", "event", "state"):
            assert device.publish(device_topic(me, kind)) == "No matching subscribers"
        assert device.publish(device_topic(other, "telemetry")) == NOT_AUTHORIZED
        assert device.publish(device_topic(me, "cmd")) == NOT_AUTHORIZED
        assert device.publish(alerts_topic("region/x")) == NOT_AUTHORIZED


def test_device_receives_only_its_own_commands(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    me, other = _ids(2)
    passwords = admin.provision_devices([me, other])
    api_password = admin.provision_service("api", "sealscope-api-cmd")
    with (
        Session(dynsec_broker, me, passwords[me], me) as device,
        Session(dynsec_broker, "sealscope-api-cmd", api_password, "api-cmd") as api,
    ):
        assert device.connect() == "Success" and api.connect() == "Success"
        # Mosquitto 2.0.11 grants these SUBSCRIBEs (the acl_file checks reads at delivery,
        # not at subscribe time); what matters is that nothing of another device arrives
        assert device.subscribe("sealscope/v1/dev/#") == "Granted QoS 1"
        assert device.subscribe(device_topic(other, "cmd")) == "Granted QoS 1"
        assert api.publish(device_topic(other, "cmd"), b"theirs") == "Success"
        assert api.publish(device_topic(me, "cmd"), b"mine") == "Success"
        assert device.messages.get(timeout=WAIT_S).payload == b"mine"
        # the broker delivers in order, so "theirs" would have arrived before "mine"
        assert device.messages.empty()


def test_device_with_another_client_id_is_refused_at_connect(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    me, other = _ids(2)
    passwords = admin.provision_devices([me, other])
    with Session(dynsec_broker, me, passwords[me], other) as impostor:
        assert impostor.connect() == NOT_AUTHORIZED
    with Session(dynsec_broker, me, "wrong-password", me) as guesser:
        assert guesser.connect() == NOT_AUTHORIZED


def test_provision_devices_again_replaces_the_password_and_kicks(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    (device_id,) = _ids(1)
    first = admin.provision_devices([device_id])[device_id]
    admin.disable_device(device_id)
    with Session(dynsec_broker, device_id, first, device_id) as device:
        assert device.connect() == NOT_AUTHORIZED  # disabled
    admin.enable_device(device_id)
    with Session(dynsec_broker, device_id, first, device_id) as device:
        assert device.connect() == "Success"
        second = admin.provision_devices([device_id])[device_id]
        assert device.disconnected.wait(WAIT_S), "the old password's connection stays up"
    assert second != first
    with Session(dynsec_broker, device_id, first, device_id) as old:
        assert old.connect() == NOT_AUTHORIZED
    with Session(dynsec_broker, device_id, second, device_id) as new:
        assert new.connect() == "Success"
        assert new.publish(device_topic(device_id, "state")) == "No matching subscribers"


def test_revoke_devices_kicks_the_connection_and_refuses_the_next(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    (device_id,) = _ids(1)
    password = admin.provision_devices([device_id])[device_id]
    with Session(dynsec_broker, device_id, password, device_id) as device:
        assert device.connect() == "Success"
        admin.revoke_devices([device_id, "never-provisioned"])
        assert device.disconnected.wait(WAIT_S)
    with Session(dynsec_broker, device_id, password, device_id) as device:
        assert device.connect() == NOT_AUTHORIZED


def test_monitoring_point_reads_only_its_alert_scope(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    scope = f"region/r{uuid.uuid4().hex[:6]}"
    mp_password = admin.provision_monitoring_point("mp:test-point", scope)
    api_password = admin.provision_service("api", "sealscope-api-test")
    with (
        Session(dynsec_broker, "mp:test-point", mp_password, "mp-1") as point,
        Session(dynsec_broker, "sealscope-api-test", api_password, "api-1") as api,
    ):
        assert point.connect() == "Success" and api.connect() == "Success"
        assert point.subscribe(alerts_topic(scope)) == "Granted QoS 1"
        assert point.subscribe(alerts_topic(scope) + "/valve") == "Granted QoS 1"
        assert point.subscribe(alerts_topic("region/elsewhere")) == NOT_AUTHORIZED
        assert point.subscribe("sealscope/v1/dev/#") == NOT_AUTHORIZED
        assert point.publish(alerts_topic(scope)) == NOT_AUTHORIZED
        # a username can never be a device id, and the explicit deny wins anyway
        assert point.publish("sealscope/v1/dev/mp:test-point/telemetry") == NOT_AUTHORIZED
        assert api.publish(alerts_topic(scope), b'{"alert": 1}') == "Success"
        assert point.messages.get(timeout=WAIT_S).payload == b'{"alert": 1}'


def test_gateway_publishes_for_any_device_and_reads_commands(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    password = admin.provision_service("gateway", "sealscope-gateway-test")
    (device_id,) = _ids(1)
    with Session(dynsec_broker, "sealscope-gateway-test", password, "gw-1") as gateway:
        assert gateway.connect() == "Success"
        assert gateway.subscribe("sealscope/v1/dev/+/cmd") == "Granted QoS 1"
        assert gateway.publish(device_topic(device_id, "telemetry")) == "No matching subscribers"
        assert gateway.publish(device_topic(device_id, "cmd")) == NOT_AUTHORIZED
        assert gateway.publish(alerts_topic("region/x")) == NOT_AUTHORIZED
        assert gateway.subscribe(alerts_topic("region/x")) == NOT_AUTHORIZED


def test_provision_service_again_rotates_its_password(
    dynsec_broker: DynsecBroker, admin: BrokerAdmin
) -> None:
    first = admin.provision_service("ingest", "sealscope-ingest-rotate")
    second = admin.provision_service("ingest", "sealscope-ingest-rotate")
    with Session(dynsec_broker, "sealscope-ingest-rotate", first, "i-1") as old:
        assert old.connect() == NOT_AUTHORIZED
    with Session(dynsec_broker, "sealscope-ingest-rotate", second, "i-1") as ingest:
        assert ingest.connect() == "Success"
        assert ingest.subscribe("$share/g/sealscope/v1/dev/#") == "Granted QoS 1"


def test_run_translates_a_refused_command(admin: BrokerAdmin) -> None:
    with pytest.raises(BrokerAdminError) as caught:
        admin.run([{"command": "addClientRole", "username": "nobody-here", "rolename": "x"}])
    assert caught.value.command == "addClientRole"
    assert caught.value.target == "nobody-here"
    assert not isinstance(caught.value, BrokerAdminUnavailable)


def test_control_with_a_wrong_password_is_unavailable(dynsec_broker: DynsecBroker) -> None:
    control = DynsecControl(
        host=dynsec_broker.server.host,
        port=dynsec_broker.server.port,
        username=dynsec_broker.admin_username,
        password="not-the-password",
        timeout_s=WAIT_S,
    )
    with pytest.raises(BrokerAdminUnavailable, match="refused"), control:
        pass


def test_device_cannot_use_the_control_api(dynsec_broker: DynsecBroker, admin: BrokerAdmin) -> None:
    (device_id,) = _ids(1)
    password = admin.provision_devices([device_id])[device_id]
    with Session(dynsec_broker, device_id, password, device_id) as device:
        assert device.connect() == "Success"
        assert device.publish("$CONTROL/dynamic-security/v1", b"{}") == NOT_AUTHORIZED
        assert device.subscribe("$CONTROL/dynamic-security/v1/response") == NOT_AUTHORIZED
        assert device.subscribe("$CONTROL/#") == NOT_AUTHORIZED
        assert device.subscribe(device_topic(device_id, "cmd")) == "Granted QoS 1"
        admin.get_client(device_id)  # a response the device must not see
        with pytest.raises(queue.Empty):
            device.messages.get(timeout=0.5)


def test_ensure_roles_is_idempotent_and_denies_by_default(admin: BrokerAdmin) -> None:
    admin.ensure_roles()
    admin.ensure_roles()
    (answer,) = admin.run([{"command": "getDefaultACLAccess"}])
    defaults = {acl["acltype"]: acl["allow"] for acl in answer["data"]["acls"]}
    assert defaults == DEFAULT_ACL_ACCESS
    (role,) = admin.run([{"command": "getRole", "rolename": "sealscope-gateway"}])
    topics = [(acl["acltype"], acl["topic"]) for acl in role["data"]["role"]["acls"]]
    assert len(topics) == len(set(topics)) == len(SERVICE_ROLES["gateway"])


@pytest.mark.parametrize("username", ["mp:", "mp:a\nb", "mp:x/#", "sealscope-a b"])
def test_provision_rejects_unusable_usernames(admin: BrokerAdmin, username: str) -> None:
    with pytest.raises(ConfigError):
        if username.startswith("mp:"):
            admin.provision_monitoring_point(username, "region/x")
        else:
            admin.provision_service("api", username)
    with pytest.raises(ValueError):
        admin.provision_monitoring_point("mp:fine", "region/+")
