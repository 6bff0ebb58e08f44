"""What the accounts store holds: organisations, their sites and remits, people, keys, sessions.

Values only; the stores (``store.py``, ``sql.py``) keep them and ``scope.py`` decides what
each organisation may see. Secrets never live in these values: a user carries an argon2
hash, a key and a session their SHA-256 digests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from sealscope.registry import AssetKind

__all__ = [
    "ORG_KINDS",
    "ApiKey",
    "OrgKind",
    "Organisation",
    "Remit",
    "Session",
    "Site",
    "User",
]

OrgKind = Literal["operator", "manufacturer", "monitoring_point", "admin"]
ORG_KINDS: Final[tuple[OrgKind, ...]] = ("operator", "manufacturer", "monitoring_point", "admin")


@dataclass(frozen=True, slots=True)
class Remit:
    """What a monitoring point watches: devices whose region and kind are listed, narrowed to
    some manufacturers or models when those are given (empty = any)."""

    regions: frozenset[str] = frozenset()
    kinds: frozenset[AssetKind] = frozenset()
    manufacturers: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    # raw per-device samples and site names; without it only bucketed telemetry
    raw_data: bool = False


@dataclass(frozen=True, slots=True)
class Organisation:
    id: int
    name: str
    kind: OrgKind
    manufacturer_code: str | None = None  # manufacturers only: Device.manufacturer
    remit: Remit = field(default_factory=Remit)  # monitoring points only
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Site:
    """A site name as devices carry it (``Device.site``), owned by one operator."""

    name: str
    operator_id: int
    region: str = ""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    org_id: int
    username: str
    password_hash: str
    created_at: float = 0.0
    disabled: bool = False


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A machine credential. ``key_id`` is public (it is in the key itself); ``secret_sha256``
    is the digest of the secret part, hex."""

    key_id: str
    org_id: int
    name: str
    secret_sha256: str
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None
    last_used_at: float | None = None

    def is_usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


@dataclass(frozen=True, slots=True)
class Session:
    """A browser sign-in; the cookie holds the token, the store only its digest."""

    token_sha256: str
    user_id: int
    created_at: float
    expires_at: float
