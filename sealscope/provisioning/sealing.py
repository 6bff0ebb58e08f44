"""Sealed MQTT passwords: what lets a password wait for the broker without being stored in
the clear. AES-256-GCM under a server key (``provisioning/broker-key`` in the data
directory, made on first use); the device id is the associated data, so a sealed password
moved to another device's row does not open. API instances sharing a database share the key.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sealscope.errors import ConfigError

__all__ = ["PasswordSealer", "load_sealing_key"]

_KEY_BYTES: Final = 32
_NONCE_BYTES: Final = 12


def load_sealing_key(path: Path) -> bytes:
    """The key at ``path``, created (mode 0600) when missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes()
        if len(key) != _KEY_BYTES:
            raise ConfigError(str(path), f"a sealing key is {_KEY_BYTES} bytes") from None
        return key
    key = secrets.token_bytes(_KEY_BYTES)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    return key


class PasswordSealer:
    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, device_id: str, password: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, password.encode(), device_id.encode())

    def open(self, device_id: str, sealed: bytes) -> str:
        """Raises ``ValueError`` for a wrong key or a row not sealed for this device."""
        try:
            plain = self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], device_id.encode()
            )
        except InvalidTag:
            raise ValueError(f"the sealed password of {device_id} does not open") from None
        return plain.decode()
