"""Delivery scope: which alert changes an organisation's subscriptions may receive.

The outbox asks ``in_scope(org_id, device_id)`` and ``risk_in_scope(org_id, dimension,
group)`` at enqueue time, inside the alert's transaction. Both answer through the accounts
``Scope`` built exactly as the API builds a caller's (``Scope.for_org`` with the org's
sites), so a subscription receives what its organisation could read through the API and
nothing else: a monitoring point its remit, an operator its sites, a manufacturer its own
devices. An unknown organisation or device answers False (nothing is sent).
"""

from __future__ import annotations

from collections.abc import Callable

from sealscope.accounts import AccountStore, Scope
from sealscope.errors import NotFound
from sealscope.registry import DeviceRegistry
from sealscope.risk import DIMENSIONS, RiskTable

__all__ = ["DeliveryScope"]


class DeliveryScope:
    """``risk_table`` returns the current fleet-risk table (None before the first one): a
    group's manufacturers decide whether a manufacturer or a narrowed remit may see it."""

    def __init__(
        self,
        accounts: AccountStore,
        registry: DeviceRegistry,
        risk_table: Callable[[], RiskTable | None] = lambda: None,
    ) -> None:
        self._accounts = accounts
        self._registry = registry
        self._risk_table = risk_table

    def scope_of(self, org_id: str) -> Scope | None:
        # Subscription.org_id is text; account ids are integers
        if not org_id.isascii() or not org_id.isdigit():
            return None
        try:
            org = self._accounts.get_org(int(org_id))
        except NotFound:
            return None
        sites = self._accounts.list_sites(operator_id=org.id) if org.kind == "operator" else ()
        return Scope.for_org(org, sites)

    def in_scope(self, org_id: str, device_id: str) -> bool:
        scope = self.scope_of(org_id)
        if scope is None:
            return False
        if scope.is_admin:
            return True
        # a fleet risk alert's subject is "dimension:group", never a device id
        dimension, colon, group = device_id.partition(":")
        if colon and dimension in DIMENSIONS:
            return self.risk_in_scope(org_id, dimension, group)
        try:
            return scope.allows_device(self._registry.get(device_id))
        except NotFound:
            return False

    def risk_in_scope(self, org_id: str, dimension: str, group: str) -> bool:
        scope = self.scope_of(org_id)
        if scope is None:
            return False
        table = self._risk_table()
        key = f"{dimension}:{group}"
        row = next((r for r in (table.rows if table else ()) if r.key == key), None)
        return scope.allows_risk_group(dimension, group, row.manufacturers if row else ())
