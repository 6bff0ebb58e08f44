"""MQTT logins an upload issued, waiting for the broker: the persisted progress of applying
them, which the upload report shows and a restarted API resumes from.

Rows are ``pending`` (password sealed), then ``applied`` (sealed password erased) or
``failed`` (the broker refused the command; the error says why, the password is erased:
the device needs a new upload with ``rotate``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from sealscope.db import read, write
from sealscope.db.provisioning import provisioning_broker_queue
from sealscope.provisioning.sealing import PasswordSealer

__all__ = ["BrokerProgress", "BrokerState", "PendingLogin", "SqlBrokerQueue"]

BrokerState = Literal["applying", "done", "failed"]
_Q = provisioning_broker_queue
_IN_CHUNK: Final = 500


@dataclass(frozen=True, slots=True)
class BrokerProgress:
    applied: int
    total: int
    failed: int

    @property
    def state(self) -> BrokerState:
        if self.applied + self.failed < self.total:
            return "applying"
        return "failed" if self.failed else "done"


@dataclass(frozen=True, slots=True)
class PendingLogin:
    upload_id: int
    device_id: str
    password: str = field(repr=False)


class SqlBrokerQueue:
    """The queue on the state database (``engine`` migrated); passwords sealed by ``sealer``."""

    def __init__(self, engine: Engine, sealer: PasswordSealer) -> None:
        self._engine = engine
        self._sealer = sealer

    def enqueue(self, upload_id: int, passwords: Mapping[str, str]) -> None:
        rows = [
            {
                "upload_id": upload_id,
                "device_id": d,
                "sealed_password": self._sealer.seal(d, p),
                "state": "pending",
            }
            for d, p in passwords.items()
        ]
        if rows:
            with write(self._engine) as conn:
                conn.execute(_Q.insert(), rows)

    def pending(self, limit: int) -> list[PendingLogin]:
        """The oldest uploads' pending logins first."""
        query = (
            sa.select(_Q.c.upload_id, _Q.c.device_id, _Q.c.sealed_password)
            .where(_Q.c.state == "pending")
            .order_by(_Q.c.upload_id, _Q.c.device_id)
            .limit(limit)
        )
        with read(self._engine) as conn:
            rows = conn.execute(query).all()
        logins: list[PendingLogin] = []
        unopened: list[PendingLogin] = []
        for upload_id, device_id, sealed in rows:
            try:
                logins.append(
                    PendingLogin(
                        int(upload_id), device_id, self._sealer.open(device_id, bytes(sealed))
                    )
                )
            except ValueError:  # another key (the key file replaced): it can never apply
                unopened.append(PendingLogin(int(upload_id), device_id, ""))
        if unopened:
            self.finish(unopened, error="sealed with another key; rotate the device's credentials")
        return logins

    def finish(self, logins: Sequence[PendingLogin], *, error: str = "") -> None:
        """Mark applied (or failed with ``error``) and erase the sealed passwords."""
        state = "failed" if error else "applied"
        by_upload: dict[int, list[str]] = {}
        for login in logins:
            by_upload.setdefault(login.upload_id, []).append(login.device_id)
        with write(self._engine) as conn:
            for upload_id, ids in by_upload.items():
                for i in range(0, len(ids), _IN_CHUNK):
                    conn.execute(
                        _Q.update()
                        .where(
                            _Q.c.upload_id == upload_id, _Q.c.device_id.in_(ids[i : i + _IN_CHUNK])
                        )
                        .values(state=state, error=error, sealed_password=None)
                    )

    def progress(self, upload_id: int) -> BrokerProgress | None:
        """None when the upload issued no MQTT logins."""
        query = (
            sa.select(_Q.c.state, sa.func.count())
            .where(_Q.c.upload_id == upload_id)
            .group_by(_Q.c.state)
        )
        with read(self._engine) as conn:
            counts = {state: int(n) for state, n in conn.execute(query).all()}
        total = sum(counts.values())
        if not total:
            return None
        return BrokerProgress(counts.get("applied", 0), total, counts.get("failed", 0))
