"""Which URLs the ``http_call`` tool may call: a guard against server-side request forgery.

Plans come from a model and from tenants' goals, so a step's URL is untrusted input. By
default a URL is allowed only when every address its host resolves to is public:
loopback, private, link-local (cloud metadata), multicast and reserved ranges are
refused. Hosts listed in ``OMNIHUB_WEBHOOK_ALLOWED_HOSTS`` (``host`` or ``host:port``,
shell-style wildcards) are allowed whatever they resolve to.

The check resolves the name, then httpx resolves it again to connect: a DNS answer that
changes in between (rebinding) is not caught here; deployments that need that closed
should also egress through a proxy that enforces the same rule.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from fnmatch import fnmatch
from urllib.parse import urlsplit

from sagas.tools.base import ToolDomainError


class UrlPolicy:
    """Allows a URL by host allow-list, or when all its addresses are public."""

    def __init__(self, allowed_hosts: Sequence[str] = (), block_private: bool = True) -> None:
        self._allowed = tuple(h.lower() for h in allowed_hosts)
        self._block_private = block_private

    @classmethod
    def allow_all(cls) -> UrlPolicy:
        """No restriction (tests with a mock transport, trusted deployments)."""
        return cls(block_private=False)

    async def check(self, url: str) -> None:
        """Raise :class:`ToolDomainError` unless ``url`` may be called."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if not host:
            raise ToolDomainError(f"{url!r} has no host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if any(fnmatch(host, p) or fnmatch(f"{host}:{port}", p) for p in self._allowed):
            return
        if not self._block_private:
            return
        for address in await _addresses(host, port):
            if not address.is_global or address.is_multicast:
                raise ToolDomainError(
                    f"{url!r} resolves to the non-public address {address}; add the host to "
                    "OMNIHUB_WEBHOOK_ALLOWED_HOSTS to allow it"
                )


async def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ToolDomainError(f"cannot resolve {host!r}: {exc}") from exc
    return [ipaddress.ip_address(info[4][0]) for info in infos]
