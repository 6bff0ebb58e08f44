"""Applies the MQTT logins an upload issued to the broker, in the background.

On Mosquitto 2.0.11 every dynsec command rewrites the plugin's whole config, so 10,000
logins take minutes; the upload answers at once and this thread feeds the queue to the
broker in chunks of ``chunk_commands`` (the broker serves its other clients between
chunks). Progress is the queue's rows, so a restarted API resumes where it stopped; a
chunk applied twice (a crash before it was marked) is harmless, every command being
idempotent. No connection: retried with backoff, the logins stay pending. A chunk the
broker refuses is retried login by login, so one bad row fails alone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Final

from sealscope.broker_admin import BrokerAdmin, DynsecControl
from sealscope.errors import BrokerAdminError, BrokerAdminUnavailable, MessageRejected
from sealscope.provisioning.broker_queue import BrokerProgress, PendingLogin, SqlBrokerQueue

__all__ = ["BrokerApplier"]

log = logging.getLogger(__name__)

_MAX_BACKOFF_S: Final = 30.0


class BrokerApplier:
    """``enqueue`` and ``progress`` for the ``Provisioner``; ``start``/``close`` the thread.

    ``connect`` returns a not yet entered ``DynsecControl``; one connection is kept while
    there is work and closed when the queue runs dry."""

    def __init__(
        self,
        queue: SqlBrokerQueue,
        connect: Callable[[], DynsecControl],
        *,
        chunk_commands: int = 25,
        idle_poll_s: float = 5.0,
    ) -> None:
        self._queue = queue
        self._connect = connect
        self._chunk = chunk_commands
        self._idle_poll_s = idle_poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-applier", daemon=True)
        self._control: DynsecControl | None = None

    def enqueue(self, upload_id: int, passwords: Mapping[str, str]) -> None:
        self._queue.enqueue(upload_id, passwords)
        self._wake.set()

    def progress(self, upload_id: int) -> BrokerProgress | None:
        return self._queue.progress(upload_id)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stops after the chunk in flight (the rest stays pending for the next start)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    # the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        backoff_s = 1.0
        try:
            while not self._stop.is_set():
                self._wake.clear()  # before reading: an enqueue after this wakes us again
                try:
                    batch = self._queue.pending(self._chunk)
                except Exception:
                    log.exception("cannot read the broker queue; retrying")
                    self._stop.wait(backoff_s)
                    continue
                if not batch:
                    self._disconnect()
                    self._wake.wait(self._idle_poll_s)
                    continue
                try:
                    self._apply(batch)
                except BrokerAdminUnavailable as exc:
                    log.warning("broker admin unavailable (%s); retry in %.0f s", exc, backoff_s)
                    self._disconnect()
                    self._stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)
                    continue
                except Exception:
                    log.exception("applying MQTT logins failed; retrying")
                    self._disconnect()
                    self._stop.wait(backoff_s)
                    backoff_s = min(backoff_s * 2, _MAX_BACKOFF_S)
                    continue
                backoff_s = 1.0
        finally:
            self._disconnect()

    def _admin(self) -> BrokerAdmin:
        if self._control is None:
            self._control = self._connect().__enter__()
        return BrokerAdmin(self._control)

    def _disconnect(self) -> None:
        if self._control is not None:
            control, self._control = self._control, None
            control.close()

    def _apply(self, batch: Sequence[PendingLogin]) -> None:
        admin = self._admin()
        try:
            admin.set_device_passwords({p.device_id: p.password for p in batch})
        except BrokerAdminUnavailable:
            raise
        except (BrokerAdminError, MessageRejected):
            for login in batch:  # find the refused ones; the others apply
                try:
                    admin.set_device_passwords({login.device_id: login.password})
                except BrokerAdminUnavailable:
                    raise
                except (BrokerAdminError, MessageRejected) as exc:
                    log.warning("broker refused the login of %s: %s", login.device_id, exc)
                    self._queue.finish([login], error=str(exc) or type(exc).__name__)
                else:
                    self._queue.finish([login])
            return
        self._queue.finish(batch)
