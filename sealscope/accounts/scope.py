"""Who may see and do what: the one place the access matrix lives (docs/access.md).

A ``Principal`` is who is calling (an organisation, through a person or a key); its
``Scope`` answers every access question the API, the page, streams and exports ask:

- ``may(action)``: may this kind of organisation do this at all? (no: HTTP 403)
- ``allows_device(device)`` / ``device_clause(columns)``: is this device visible, in Python
  and as a SQLAlchemy Core filter for device queries? (no: HTTP 404, as for a missing id)
- ``allows_risk_row(row)``: is this fleet-risk group in the caller's remit?
- ``present(device)``: the device as this caller may see it (site names hidden from
  manufacturers and from monitoring points without a raw-data grant; the region stays).

Operators see devices at their sites (the ``sites`` table maps a site name to its
operator); manufacturers see devices whose ``manufacturer`` is their code, wherever
installed; monitoring points see devices whose region and kind are in their remit
(narrowed by manufacturers/models when the remit lists some), aggregated telemetry only
unless granted raw data; the admin sees everything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from sealscope.accounts.models import Organisation, OrgKind, Remit, Site
from sealscope.errors import Forbidden
from sealscope.registry import Device
from sealscope.risk import RiskRow

__all__ = ["ACTIONS", "Action", "Principal", "Scope"]

Action = Literal[
    "devices:read",
    "devices:register",
    "devices:claim",
    "telemetry:read",
    "alerts:read",
    "alerts:act",
    "commands:send",
    "commands:read",
    "risk:read",
    "dead_letters:read",
    "sites:read",
    "keys:own",
    "accounts:admin",
]

_ALL: Final[frozenset[OrgKind]] = frozenset(
    {"operator", "manufacturer", "monitoring_point", "admin"}
)
# action -> the organisation kinds that may take it (inside their scope)
ACTIONS: Final[dict[Action, frozenset[OrgKind]]] = {
    "devices:read": _ALL,
    "devices:register": frozenset({"manufacturer", "admin"}),  # incl. fleet provisioning
    "devices:claim": frozenset({"operator", "admin"}),  # into the operator's own sites
    "telemetry:read": _ALL,
    "alerts:read": _ALL,
    "alerts:act": frozenset({"operator", "admin"}),  # acknowledge, resolve: technicians
    # queue a device command, see the device's commands: technicians of the device's site
    "commands:send": frozenset({"operator", "admin"}),
    "commands:read": frozenset({"operator", "admin"}),
    "risk:read": frozenset({"manufacturer", "monitoring_point", "admin"}),
    "dead_letters:read": frozenset({"admin"}),  # raw payloads of every tenant
    "sites:read": frozenset({"operator", "admin"}),  # an operator lists its own
    "keys:own": _ALL,
    "accounts:admin": frozenset({"admin"}),
}


@dataclass(frozen=True, slots=True)
class Scope:
    kind: OrgKind
    sites: frozenset[str] = frozenset()  # operators
    manufacturer_code: str | None = None  # manufacturers
    remit: Remit = field(default_factory=Remit)  # monitoring points

    @classmethod
    def for_org(cls, org: Organisation, sites: Iterable[Site] = ()) -> Scope:
        return cls(
            kind=org.kind,
            sites=frozenset(s.name for s in sites if s.operator_id == org.id),
            manufacturer_code=org.manufacturer_code,
            remit=org.remit,
        )

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"

    def may(self, action: Action) -> bool:
        return self.kind in ACTIONS[action]

    def require(self, action: Action) -> None:
        if not self.may(action):
            raise Forbidden(f"a {self.kind.replace('_', ' ')} may not use this ({action})")

    # -- devices -----------------------------------------------------------------------

    def allows_device(self, device: Device) -> bool:
        if self.kind == "admin":
            return True
        if self.kind == "operator":
            return device.site in self.sites
        if self.kind == "manufacturer":
            return self.manufacturer_code is not None and device.manufacturer == (
                self.manufacturer_code
            )
        r = self.remit
        return (
            device.region in r.regions
            and device.kind in r.kinds
            and (not r.manufacturers or device.manufacturer in r.manufacturers)
            and (not r.models or device.model in r.models)
        )

    def device_clause(self, columns: Any) -> Any:
        """The same rule as ``allows_device`` as a SQLAlchemy Core boolean over a devices
        table's columns (``table.c``: site, manufacturer, region, kind, model)."""
        from sqlalchemy import and_, false, true

        if self.kind == "admin":
            return true()
        if self.kind == "operator":
            return columns.site.in_(sorted(self.sites)) if self.sites else false()
        if self.kind == "manufacturer":
            if self.manufacturer_code is None:
                return false()
            return columns.manufacturer == self.manufacturer_code
        r = self.remit
        if not r.regions or not r.kinds:
            return false()
        terms = [columns.region.in_(sorted(r.regions)), columns.kind.in_(sorted(r.kinds))]
        if r.manufacturers:
            terms.append(columns.manufacturer.in_(sorted(r.manufacturers)))
        if r.models:
            terms.append(columns.model.in_(sorted(r.models)))
        return and_(*terms)

    @property
    def sees_site_names(self) -> bool:
        return self.kind in ("admin", "operator") or (
            self.kind == "monitoring_point" and self.remit.raw_data
        )

    @property
    def sees_raw_telemetry(self) -> bool:
        """Monitoring points get bucketed means unless their remit grants raw data."""
        return self.kind != "monitoring_point" or self.remit.raw_data

    def present(self, device: Device) -> Device:
        return device if self.sees_site_names else dataclasses.replace(device, site="")

    # -- fleet risk ----------------------------------------------------------------------

    def allows_risk_group(
        self, dimension: str, group: str, manufacturers: Iterable[str] = ()
    ) -> bool:
        """A fleet-risk group (a risk table row, or the subject ``dimension:group`` of a
        fleet risk alert; ``manufacturers`` are the makers of the group's devices)."""
        makers = frozenset(manufacturers)
        if self.kind == "admin":
            return True
        if self.kind == "manufacturer":
            # only groups made entirely of its own devices: a region row is everyone's
            code = self.manufacturer_code
            if dimension == "manufacturer":
                return group == code
            return code is not None and makers == {code} and dimension != "region"
        if self.kind != "monitoring_point":
            return False
        r = self.remit
        if dimension == "region":
            return group in r.regions
        if dimension == "manufacturer":
            return not r.manufacturers or group in r.manufacturers
        within_makers = not r.manufacturers or (bool(makers) and makers <= r.manufacturers)
        if dimension == "model":
            return within_makers and (not r.models or group in r.models)
        return within_makers  # batch

    def allows_risk_row(self, row: RiskRow) -> bool:
        return self.allows_risk_group(row.dimension, row.group, row.manufacturers)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an organisation, through a person (session) or a key."""

    org_id: int
    org_kind: OrgKind
    name: str  # username or key name, for audit trails; never a secret
    via: Literal["session", "key", "jwt"]
    scope: Scope
    user_id: int | None = None
    key_id: str | None = None

    def require(self, action: Action) -> None:
        self.scope.require(action)
