"""Small health probes: each answers within about a second and never raises."""

from __future__ import annotations

import socket
import struct
import subprocess
from collections.abc import Sequence

from infra.config import HOST

TIMEOUT_S = 1.0


def tcp_open(port: int, host: str = HOST) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            return True
    except OSError:
        return False


def redis_ping(port: int, host: str = HOST) -> bool:
    """True if a Redis server answers PING with PONG (not LOADING while replaying the AOF)."""
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def kafka_api_versions(port: int, host: str = HOST) -> bool:
    """True if a Kafka broker answers an ApiVersions v0 request without error.

    A broker binds its listener early but only serves requests once it has caught up
    with the metadata log, so this is a better "ready" signal than an open port.
    """
    client_id = b"omnihub-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S) as sock:
            sock.sendall(struct.pack(">i", len(body)) + body)
            header = _recv_exact(sock, 10)
    except OSError:
        return False
    _size, correlation_id, error_code = struct.unpack(">iih", header)
    return bool(correlation_id == 1 and error_code == 0)


def command_ok(argv: Sequence[str], timeout_s: float = 5.0) -> bool:
    """True if ``argv`` exits with status 0 within ``timeout_s``."""
    try:
        result = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if another process already listens on ``host:port``."""
    return tcp_open(port, host)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("connection closed")
        data += chunk
    return data
