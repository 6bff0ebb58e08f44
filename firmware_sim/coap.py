"""The NB-IoT path: devices POST SenML uplinks to the sealscope gateway over CoAP.

Follows the contract in ``gateway/README.md``: ``POST /u/{device_id}?k={key}`` with one
SenML pack (CBOR, Content-Format 112, or JSON, 110); ``2.04`` means durable, and its
payload carries the device's queued commands. The canonical JSON the fleet produced is
turned into SenML records here (full wire field names, times as base time + offset); a
radio duplicate is the same payload bytes sent again, which the gateway recognises and
does not publish twice. Commands received are acknowledged with ``cmd:{id}`` records in the
device's next uplink (``delivered``, then ``succeeded`` or ``failed`` once the runner
reports the outcome through ``command_outcome``).

Reconciliation: the gateway publishes one canonical message per *unique* uplink (device,
seq), so its MQTT side sees ``RadioCounts.messages - messages_lost`` messages, not copies.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Self

import cbor2
import msgspec

from firmware_sim.transport import Delivery, DeviceMessage

__all__ = ["CoapTransport", "to_senml"]

log = logging.getLogger(__name__)

_BN, _BT, _N, _V, _VS, _VB, _T = -2, -3, 0, 2, 3, 4, 6
_CBOR, _JSON = 112, 110
_CHANGED = "2.04"


def to_senml(device_id: str, kind: str, payload: bytes) -> list[dict[str, Any]]:
    """SenML records (JSON labels) for one canonical v1 message."""
    msg = msgspec.json.decode(payload)
    base = f"urn:dev:sn:{device_id}:"
    if kind == "telemetry":
        samples = msg["samples"]
        t0 = samples[0]["t"]
        records: list[dict[str, Any]] = [{"bn": base, "bt": t0, "n": "seq", "v": msg["seq"]}]
        for sample in samples:
            dt = round(sample["t"] - t0, 3)
            for name, value in sample.items():
                if name != "t":
                    rec: dict[str, Any] = {"n": name, "v": value}
                    if dt:
                        rec["t"] = dt
                    records.append(rec)
        return records
    if kind == "event":
        records = [
            {"bn": base, "bt": msg["t"], "n": "seq", "v": msg["seq"]},
            {"n": "event", "vs": msg["kind"]},
        ]
        if msg.get("detail"):
            records.append({"n": "detail", "vs": msg["detail"]})
        return records
    if kind == "state":
        records = [
            {"bn": base, "bt": msg["t"], "n": "seq", "v": msg.get("seq", 0)},
            {"n": "fw", "vs": msg["fw"]},
        ]
        for key, value in msg.get("config", {}).items():
            label = "vb" if isinstance(value, bool) else "vs" if isinstance(value, str) else "v"
            records.append({"n": f"cfg:{key}", label: value})
        if msg.get("last_wake_t") is not None:
            records.append({"n": "last_wake", "v": msg["last_wake_t"]})
        return records
    raise ValueError(f"no SenML form for {kind!r} messages")


_CBOR_LABELS = {"bn": _BN, "bt": _BT, "n": _N, "v": _V, "vs": _VS, "vb": _VB, "t": _T}


def _encode(records: list[dict[str, Any]], content_format: int) -> bytes:
    if content_format == _JSON:
        return json.dumps(records, separators=(",", ":")).encode()
    return cbor2.dumps([{_CBOR_LABELS[k]: v for k, v in r.items()} for r in records])


class CoapTransport:
    """Uplinks through the gateway's CoAP server; ``keys`` are the gateway-issued keys."""

    name = "coap"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        keys: Mapping[str, str],
        encoding: Literal["cbor", "json"] = "cbor",
        concurrency: int = 64,
        timeout_s: float = 30.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.host, self.port = host, port
        self._keys = keys
        self._format = _CBOR if encoding == "cbor" else _JSON
        self._concurrency = concurrency
        self._timeout_s = timeout_s
        self._context: Any = None
        self._to_report: dict[str, dict[str, str]] = defaultdict(dict)  # device -> id -> state
        self._done: dict[str, set[str]] = defaultdict(set)  # command ids already executed

    async def __aenter__(self) -> Self:
        import aiocoap

        self._context = await aiocoap.Context.create_client_context()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        context, self._context = self._context, None
        if context is not None:
            await context.shutdown()

    def command_outcome(self, device_id: str, payload: bytes, ok: bool) -> None:
        """The device carried out (or could not) a command; say so in its next uplink."""
        command_id = json.loads(payload).get("id")
        if command_id:
            self._to_report[device_id][command_id] = "succeeded" if ok else "failed:unsupported"

    async def send(self, messages: Sequence[DeviceMessage]) -> Delivery:
        delivery = Delivery(acked=[0] * len(messages))
        by_device: dict[str, list[int]] = defaultdict(list)
        for index, m in enumerate(messages):
            by_device[m.device_id].append(index)
        queue: asyncio.Queue[list[int]] = asyncio.Queue()
        for indices in by_device.values():
            queue.put_nowait(indices)

        async def worker() -> None:
            # one device's messages in order, devices concurrently
            while not queue.empty():
                for index in queue.get_nowait():
                    await self._send_one(index, messages[index], delivery)

        async with asyncio.TaskGroup() as tg:
            for k in range(min(self._concurrency, len(by_device))):
                tg.create_task(worker(), name=f"coap-device-{k}")
        return delivery

    async def _send_one(self, index: int, m: DeviceMessage, delivery: Delivery) -> None:
        import aiocoap

        key = self._keys.get(m.device_id, "")
        records = to_senml(m.device_id, m.kind, m.payload)
        reports = self._to_report.pop(m.device_id, {})
        records += [{"n": f"cmd:{cid}", "vs": state} for cid, state in reports.items()]
        body = _encode(records, self._format)
        for _ in range(m.copies):
            request = aiocoap.Message(
                code=aiocoap.POST,
                uri=f"coap://{self.host}:{self.port}/u/{m.device_id}?k={key}",
                payload=body,
                content_format=self._format,
            )
            delivery.published += 1
            try:
                async with asyncio.timeout(self._timeout_s):
                    response = await self._context.request(request).response
            except (TimeoutError, aiocoap.error.Error) as exc:
                # no answer (gateway not up yet, restarting, unreachable): not acknowledged,
                # so the device keeps the samples and sends them again, as a real one does
                log.debug("coap: %s got no answer: %r", m.device_id, exc)
                return
            if str(response.code).startswith(_CHANGED):
                delivery.acked[index] += 1
                self._take_commands(m.device_id, response.payload, delivery)
            else:
                reason = f"{response.code} {response.payload[:200].decode(errors='replace')}"
                delivery.refused.append((index, reason))

    def _take_commands(self, device_id: str, payload: bytes, delivery: Delivery) -> None:
        if not payload:
            return
        try:
            commands = (
                cbor2.loads(payload) if self._format == _CBOR else json.loads(payload.decode())
            )
        except (ValueError, cbor2.CBORDecodeError):
            log.warning("unreadable command payload for %s", device_id)
            return
        for command in commands if isinstance(commands, list) else []:
            cid = str(command.get("id", ""))
            if cid and cid in self._done[device_id]:
                continue  # re-sent until acknowledged: do not execute twice
            if cid:
                self._done[device_id].add(cid)
                self._to_report[device_id].setdefault(cid, "delivered")
            delivery.downlinks.append((device_id, json.dumps(command).encode()))
