"""Loopback ports for child services: free ones, taken ones, waiting for one to open."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

from sealscope.errors import ServerFailed

__all__ = ["ServerFailed", "free_port", "free_ports", "log_tail", "port_is_free", "wait_for_port"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel just had free on ``host``; racy by nature, so bind it soon."""
    return free_ports(1, host)[0]


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """``n`` distinct free ports: all stay bound until every one is picked, or two calls of
    ``free_port`` in a row may get the same port back."""
    with contextlib.ExitStack() as held:
        ports = []
        for _ in range(n):
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def port_is_free(host: str, port: int) -> bool:
    """True if nothing listens on ``host:port`` (connections in TIME_WAIT do not count).

    Checked before starting a child on a given port: otherwise the readiness probe would
    happily connect to whoever already holds the port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(
    host: str,
    port: int,
    timeout_s: float,
    proc: subprocess.Popen[bytes] | None = None,
) -> None:
    """Poll until ``host:port`` accepts TCP connections; fail fast if ``proc`` exits."""
    deadline = time.monotonic() + timeout_s
    delay_s = 0.01
    while True:
        if proc is not None and proc.poll() is not None:
            raise ServerFailed(f"process {proc.pid} exited with {proc.returncode} before {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise ServerFailed(f"nothing listened on {host}:{port} within {timeout_s}s")
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.1)


def log_tail(path: Path, max_bytes: int = 4000) -> str:
    """The last ``max_bytes`` of a log file, for error messages; empty if unreadable."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - max_bytes))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
