"""Bring a fleet in: register its devices, issue their credentials and claim codes, and let
an operator's technician claim a device into a site.

Re-uploading a file is safe. A device already provisioned keeps its credentials and claim
code (re-issuing would lock out devices already in the field) and is reported
``unchanged`` or ``updated``; ``rotate=True`` re-issues them for every existing device of
the file (the CoAP key through the key store's rotation, so the old key keeps working for
its grace period while sleeping devices learn the new one). A device registered without
credentials (by an upload cut short, or outside provisioning) gets them on the next upload.

Order of writes, for a crash at any point: registry, then credentials, then the record of
having issued them. A crash before the record leaves the device without one, so the next
upload issues again; the lost file's secrets are then dead.

Ports it needs besides the registry and ``ProvisioningStore``: ``CoapKeyIssuer`` (the
gateway's key store) and ``MqttIdentities`` (broker administration, e.g. Mosquitto's
dynamic security); either may be absent, and its column of the file is then empty.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from sealscope.broker_admin import new_password
from sealscope.errors import NotFound
from sealscope.labels import check_label
from sealscope.provisioning.broker_queue import BrokerProgress
from sealscope.provisioning.bundle import IssuedCredentials
from sealscope.provisioning.claim_codes import ClaimCodes, new_claim_code
from sealscope.provisioning.rows import FieldProblem, FleetRow, RowProblem, validate_rows
from sealscope.provisioning.store import (
    ProvisionedDevice,
    ProvisioningStore,
    RowStatus,
    Upload,
    UploadRow,
)
from sealscope.registry import Device, DeviceRegistry

__all__ = [
    "CoapKeyIssuer",
    "FileFormat",
    "Mode",
    "MqttIdentities",
    "MqttLoginQueue",
    "Provisioner",
    "ProvisioningResult",
]

log = logging.getLogger(__name__)

FileFormat = Literal["csv", "json"]
Mode = Literal["all_or_nothing", "good_rows_only"]


class CoapKeyIssuer(Protocol):
    def issue_many(self, device_ids: Iterable[str]) -> dict[str, str]:
        """Keys for the devices that have none; devices with a key keep it (not returned)."""
        ...

    def rotate(self, device_id: str) -> str:
        """A new key; the old one stays valid for a grace period. ``NotFound`` if none."""
        ...


class MqttIdentities(Protocol):
    def provision_devices(self, device_ids: Sequence[str]) -> dict[str, str]:
        """A broker login per device (username = device id), new password each; returns them."""
        ...


class MqttLoginQueue(Protocol):
    """Broker logins applied later (``BrokerApplier``): the upload answers at once."""

    def enqueue(self, upload_id: int, passwords: Mapping[str, str]) -> None: ...

    def progress(self, upload_id: int) -> BrokerProgress | None: ...


@dataclass(frozen=True, slots=True)
class ProvisioningResult:
    """``upload`` is None when an all-or-nothing file was refused (nothing stored)."""

    upload: Upload | None
    rows: list[UploadRow]
    problems: list[RowProblem]
    credentials: list[IssuedCredentials] = field(repr=False)

    @property
    def is_refused(self) -> bool:
        return self.upload is None


def _reason(problem: RowProblem) -> str:
    return "; ".join(f"{p.field}: {p.reason}" for p in problem.problems)


class Provisioner:
    def __init__(
        self,
        *,
        registry: DeviceRegistry,
        store: ProvisioningStore,
        claim_codes: ClaimCodes,
        coap_keys: CoapKeyIssuer | None = None,
        mqtt: MqttIdentities | None = None,
        mqtt_queue: MqttLoginQueue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``mqtt`` applies logins to the broker during the upload; ``mqtt_queue`` (instead)
        records them for the background, which large fleets need."""
        self._registry = registry
        self._store = store
        self._codes = claim_codes
        self._coap = coap_keys
        self._mqtt = mqtt
        self._mqtt_queue = mqtt_queue
        self._clock = clock

    @property
    def store(self) -> ProvisioningStore:
        return self._store

    def broker_progress(self, upload_id: int) -> BrokerProgress | None:
        """How far the upload's MQTT logins are applied; None if none are queued."""
        return self._mqtt_queue.progress(upload_id) if self._mqtt_queue is not None else None

    def provision(
        self,
        rows: list[FleetRow],
        *,
        manufacturer: str,
        file_format: FileFormat,
        mode: Mode,
        rotate: bool = False,
    ) -> ProvisioningResult:
        check_label("manufacturer", manufacturer, required=True)
        good: list[tuple[FleetRow, Device, Device | None]] = []
        problems: list[RowProblem] = []
        verdicts = list(validate_rows(rows, manufacturer))
        registered = self._registry.get_many(
            [v.device_id for _, v in verdicts if isinstance(v, Device)]
        )
        for row, verdict in verdicts:
            if isinstance(verdict, RowProblem):
                problems.append(verdict)
                continue
            existing = registered.get(verdict.device_id)
            if existing is not None and existing.manufacturer != manufacturer:
                taken = FieldProblem("device_id", "is registered to another manufacturer")
                problems.append(RowProblem(row.line, verdict.device_id, (taken,)))
                continue
            good.append((row, verdict, existing))

        if problems and mode == "all_or_nothing":
            return ProvisioningResult(None, [], problems, [])

        statuses: dict[str, RowStatus] = {}
        to_write: list[Device] = []
        for _, device, existing in good:
            if existing is None:
                statuses[device.device_id] = "created"
                to_write.append(device)
                continue
            # the file never moves a device: its site (and region, unless given) stay
            merged = replace(
                device,
                site=existing.site,
                region=device.region or existing.region,
                created_at=existing.created_at,
            )
            if merged == existing:
                statuses[device.device_id] = "unchanged"
            else:
                statuses[device.device_id] = "updated"
                to_write.append(merged)
        self._registry.upsert_many(to_write)

        ids = [device.device_id for _, device, _ in good]
        records = self._store.provisioned(ids)
        needing = [
            d
            for d in ids
            if statuses[d] == "created" or d not in records or (rotate and d in records)
        ]
        credentials = self._issue(needing, records, manufacturer, rotate=rotate)

        issued_ids = {c.device_id for c in credentials}
        result_rows = [
            UploadRow(
                row.line,
                device.device_id,
                statuses[device.device_id],
                "",
                device.device_id in issued_ids,
            )
            for row, device, _ in good
        ]
        result_rows += [UploadRow(p.line, p.device_id, "rejected", _reason(p)) for p in problems]
        result_rows.sort(key=lambda r: r.line)
        counts = {s: 0 for s in ("created", "updated", "unchanged")}
        for status in statuses.values():
            counts[status] += 1
        upload = self._store.add_upload(
            Upload(
                id=0,
                manufacturer=manufacturer,
                created_at=self._clock(),
                file_format=file_format,
                mode=mode,
                rotate=rotate,
                rows=len(rows),
                rejected=len(problems),
                credentials_issued=len(credentials),
                **counts,
            ),
            result_rows,
        )
        # counts only: never a secret, never a claim code
        log.info(
            "provisioning upload %d by %s: %d rows, %d created, %d updated, %d unchanged,"
            " %d rejected, %d credentials issued",
            upload.id,
            manufacturer,
            upload.rows,
            upload.created,
            upload.updated,
            upload.unchanged,
            upload.rejected,
            upload.credentials_issued,
        )
        if self._mqtt_queue is not None:
            # after the upload row (the queue refers to it); a crash before this line loses
            # an answer that was never sent, so no device holds these passwords
            logins = {c.device_id: c.mqtt_password for c in credentials if c.mqtt_password}
            self._mqtt_queue.enqueue(upload.id, logins)
        return ProvisioningResult(upload, result_rows, problems, credentials)

    def _issue(
        self,
        device_ids: list[str],
        records: dict[str, ProvisionedDevice],
        manufacturer: str,
        *,
        rotate: bool,
    ) -> list[IssuedCredentials]:
        if not device_ids:
            return []
        coap: dict[str, str] = {}
        if self._coap is not None:
            coap = self._coap.issue_many(device_ids)
            if rotate:
                for d in device_ids:
                    if d not in coap and d in records:
                        coap[d] = self._coap.rotate(d)
        mqtt: dict[str, str] = {}
        if self._mqtt_queue is not None:
            mqtt = {d: new_password() for d in device_ids}
        elif self._mqtt is not None:
            mqtt = self._mqtt.provision_devices(device_ids)

        now = self._clock()
        issued: list[IssuedCredentials] = []
        saved: list[ProvisionedDevice] = []
        for d in device_ids:
            before = records.get(d)
            code = ""
            if before is not None and before.is_claimed:
                saved.append(replace(before, issued_at=now))  # the nameplate code is spent
            else:
                code = new_claim_code()
                saved.append(ProvisionedDevice(d, manufacturer, self._codes.hash(d, code), now))
            password = mqtt.get(d, "")
            issued.append(
                IssuedCredentials(
                    device_id=d,
                    mqtt_username=d if password else "",
                    mqtt_password=password,
                    coap_key=coap.get(d, ""),
                    claim_code=code,
                )
            )
        self._store.save_issued(saved)
        return issued

    def claim(
        self, device_id: str, code: str, *, site: str, region: str, claimed_by: str
    ) -> Device:
        """Move the device into ``site``; ``NotFound`` for an unknown device, a wrong code, or
        a device someone else claimed (the same answer, so it reveals nothing). Claiming
        again into the same site by the same claimer answers as the first time did."""
        check_label("site", site, required=True)
        check_label("region", region)
        record = self._store.provisioned([device_id]).get(device_id)
        if record is None or not self._codes.matches(device_id, code, record.claim_hash):
            raise NotFound("device", device_id)
        if record.is_claimed:
            if (record.claimed_by, record.claimed_site) != (claimed_by, site):
                raise NotFound("device", device_id)
        elif not self._store.mark_claimed(
            device_id,
            claim_hash=record.claim_hash,
            site=site,
            claimed_by=claimed_by,
            now=self._clock(),
        ):
            raise NotFound("device", device_id)  # another claim won the race
        # also on a repeated claim: a crash after marking it must not leave it unmoved
        device = self._registry.get(device_id)
        moved = replace(device, site=site, region=region or device.region)
        if moved != device:
            self._registry.upsert_many([moved])
        log.info("device %s claimed into a site by %s", device_id, claimed_by)
        return moved
