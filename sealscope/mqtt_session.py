"""A paho-mqtt client for a persistent QoS 1 session that acknowledges by hand.

Ingest and the gateway's command subscriber both need one: the broker keeps the session
(and its queued messages) while they are away, and a message is acknowledged only once
it is durable on our side, so a crash before that means the broker sends it again.

A session belongs to a client id, and the broker hands it to whoever connects with that id
next (MQTT 5 tells the old owner with reason code 142 "Session taken over").
``ReconnectBackoff`` paces taking it back, and ``is_session_taken_over`` spots the case.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

__all__ = ["ReconnectBackoff", "is_session_taken_over", "manual_ack_client"]

SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason code


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


def is_session_taken_over(reason: Any) -> bool:
    """True for the DISCONNECT a broker sends when another connection took our client id."""
    return getattr(reason, "value", None) == SESSION_TAKEN_OVER


class ReconnectBackoff:
    """Capped, jittered delays for paho's reconnect after the broker dropped us.

    paho waits a fixed ``min_delay`` after a dropped connection (its doubling applies only
    to failed attempts), so two clients fighting over one client id would reconnect in
    lockstep forever. Each drop within ``stable_s`` of the last connect doubles the delay
    up to ``cap_s``; a connection that held for ``stable_s`` starts again from ``base_s``.
    Jitter (half to all of the delay) keeps several such clients from moving together.
    """

    def __init__(
        self,
        *,
        base_s: float = 0.5,
        cap_s: float = 10.0,
        stable_s: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError("need 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self.stable_s = stable_s
        self._rng = rng or random.Random()
        self._streak = 0
        self._connected_at: float | None = None
        self._lock = threading.Lock()

    def connected(self, now_s: float | None = None) -> None:
        with self._lock:
            self._connected_at = time.monotonic() if now_s is None else now_s

    def dropped(self, now_s: float | None = None) -> float:
        """The delay before the next attempt, after a connection was lost."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            held_s = now_s - self._connected_at if self._connected_at is not None else 0.0
            self._streak = 0 if held_s >= self.stable_s else self._streak + 1
            ceiling = min(self.cap_s, self.base_s * 2 ** min(self._streak, 30))
        return ceiling * (0.5 + 0.5 * self._rng.random())
