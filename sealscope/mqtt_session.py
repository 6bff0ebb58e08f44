"""A paho-mqtt client for a persistent QoS 1 session that acknowledges by hand.

Ingest and the gateway's command subscriber both need one: the broker keeps the session
(and its queued messages) while they are away, and a message is acknowledged only once
it is durable on our side, so a crash before that means the broker sends it again.
"""

from __future__ import annotations

from typing import Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["manual_ack_client"]


def manual_ack_client(
    *,
    client_id: str,
    protocol: Literal["5", "3.1.1"],
    username: str | None,
    password: str | None,
    max_reconnect_delay_s: int,
) -> mqtt.Client:
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if protocol == "5" else mqtt.MQTTv311,
        # v5 asks for the session in CONNECT properties; 3.1.1 by clean_session=False
        clean_session=None if protocol == "5" else False,
        manual_ack=True,
    )
    if username:
        client.username_pw_set(username, password)
    client.reconnect_delay_set(min_delay=1, max_delay=max_reconnect_delay_s)
    # a bug in a callback must not end the network thread: the message stays unacked
    # (so the broker redelivers it) and the error is logged
    client.suppress_exceptions = True
    return client
