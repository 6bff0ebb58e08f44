"""Request/response over Mosquitto's dynamic-security control topic.

Commands go to ``$CONTROL/dynamic-security/v1`` as ``{"commands": [...]}``; the plugin
answers every message with one ``{"responses": [...]}`` on ``.../v1/response``, in
command order. Every admin connection receives every answer, so each command carries a
``correlationData`` naming this request and its index.

Mosquitto 2.0.11 rewrites its whole JSON config file after *each* command that changes
something, with the broker's single thread blocked meanwhile: n creates cost O(n^2) and a
huge message stalls every client of the broker. ``chunk_commands`` bounds how long one
message holds the broker; other clients are served between chunks.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sealscope.errors import BrokerAdminError, BrokerAdminUnavailable

__all__ = ["CONTROL_TOPIC", "RESPONSE_TOPIC", "DynsecControl"]

log = logging.getLogger(__name__)

CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
RESPONSE_TOPIC = f"{CONTROL_TOPIC}/response"

Command = dict[str, Any]
Response = dict[str, Any]


class DynsecControl:
    """One admin connection; ``execute`` sends commands in chunks and returns the answers."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        username: str,
        password: str,
        client_id: str | None = None,
        timeout_s: float = 120.0,
        chunk_commands: int = 25,
        keepalive_s: int = 300,
    ) -> None:
        if chunk_commands < 1:
            raise ValueError("chunk_commands must be >= 1")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.chunk_commands = chunk_commands
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"sealscope-admin-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        # a long chunk blocks the broker past a short keepalive, and the answer would go to
        # a connection the broker already dropped
        self._keepalive_s = keepalive_s
        self._lock = threading.Lock()  # one request at a time on this connection
        self._cond = threading.Condition()
        self._ready = False
        self._refused: str | None = None
        self._pending: str | None = None
        self._answer: list[Response] | None = None

    def __enter__(self) -> DynsecControl:
        try:
            self._client.connect(self.host, self.port, keepalive=self._keepalive_s)
        except OSError as exc:
            raise BrokerAdminUnavailable(f"cannot reach {self.host}:{self.port}: {exc}") from exc
        self._client.loop_start()
        with self._cond:
            ready = self._cond.wait_for(lambda: self._ready or self._refused, self.timeout_s)
        if not ready or self._refused:
            self.close()
            raise BrokerAdminUnavailable(self._refused or "no CONNACK/SUBACK in time")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def execute(self, commands: Sequence[Command]) -> list[Response]:
        """Answers in command order; a chunk unanswered within ``timeout_s`` raises."""
        responses: list[Response] = []
        for start in range(0, len(commands), self.chunk_commands):
            responses += self._request(commands[start : start + self.chunk_commands])
        return responses

    def _request(self, commands: Sequence[Command]) -> list[Response]:
        with self._lock:
            token = uuid.uuid4().hex
            payload = {
                "commands": [
                    {**c, "correlationData": f"{token}:{i}"} for i, c in enumerate(commands)
                ]
            }
            with self._cond:
                self._pending, self._answer = token, None
            info = self._client.publish(CONTROL_TOPIC, json.dumps(payload), qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                raise BrokerAdminUnavailable(f"publish failed: {mqtt.error_string(info.rc)}")
            with self._cond:
                answered = self._cond.wait_for(lambda: self._answer is not None, self.timeout_s)
                answer, self._pending = self._answer, None
            if not answered or answer is None:
                raise BrokerAdminUnavailable(
                    f"no answer to {len(commands)} commands within {self.timeout_s} s "
                    "(they may have been applied; re-running is safe)"
                )
        if len(answer) != len(commands):
            raise BrokerAdminError(f"{len(answer)} answers to {len(commands)} commands")
        return answer

    # paho network thread ------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            with self._cond:
                self._refused = f"broker refused the admin connection: {reason}"
                self._cond.notify_all()
            return
        # subscribed again after every reconnect (clean start)
        client.subscribe(RESPONSE_TOPIC, qos=1)

    def _on_subscribe(self, _c: Any, _u: Any, _mid: Any, reasons: Any, _p: Any) -> None:
        with self._cond:
            if any(r.is_failure for r in reasons):
                self._refused = f"not allowed to subscribe to {RESPONSE_TOPIC}"
            else:
                self._ready = True
            self._cond.notify_all()

    def _on_message(self, _c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(message.payload)["responses"]
            first = str(responses[0].get("correlationData", ""))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            log.warning("ignoring an unreadable dynsec response (%d bytes)", len(message.payload))
            return
        with self._cond:
            if self._pending and first.startswith(f"{self._pending}:"):
                self._answer = responses
                self._cond.notify_all()
