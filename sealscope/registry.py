"""The device registry: what each device is, so ingest can tag its telemetry.

Port: ``DeviceRegistry``. Adapter: ``SqliteDeviceRegistry`` (embedded default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["AssetKind", "Device", "DeviceRegistry"]

AssetKind = Literal["valve", "pump"]
# ISO 5208 seat leakage rate classes
LeakageClass = Literal["", "A", "AA", "B", "C", "CC", "D", "E", "EE", "F", "G"]


@dataclass(frozen=True, slots=True)
class Device:
    device_id: str
    kind: AssetKind
    manufacturer: str
    model: str
    batch: str = ""
    site: str = ""
    region: str = ""
    dn: int | None = None  # nominal size, mm
    pn: int | None = None  # pressure class, bar
    seat_material: str = ""
    leakage_class: LeakageClass = ""
    firmware: str = ""
    created_at: float = 0.0  # Unix s, set by the registry

    @property
    def tags(self) -> tuple[tuple[str, str], ...]:
        """The tags ingest puts on every point of this device."""
        return (
            ("device_id", self.device_id),
            ("model", self.model),
            ("manufacturer", self.manufacturer),
            ("batch", self.batch),
            ("site", self.site),
            ("region", self.region),
        )


class DeviceRegistry(Protocol):
    def add(self, device: Device) -> Device:
        """Register one device; raises Conflict if the id exists. Returns it with created_at."""
        ...

    def upsert_many(self, devices: Iterable[Device]) -> int:
        """Register or update many devices in one transaction (fleet provisioning)."""
        ...

    def get(self, device_id: str) -> Device:
        """Raises NotFound."""
        ...

    def list(
        self,
        *,
        manufacturer: str | None = None,
        site: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[Device]: ...

    def close(self) -> None: ...
