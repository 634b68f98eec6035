"""One structured line per API request on the ``omnihub.access`` logger.

Method, route template, status, duration, request id, tenant and the key's public
prefix (``omh_epkr4lsh``), never the key: the prefix comes from the authenticated
principal (which the gateway dependency leaves in the ASGI scope under
:data:`PRINCIPAL`) or, for a refused key, is parsed out of the header, and the secret
part is never read into the line. A pure ASGI middleware that costs one level check when
the logger is off; when on, the fields are computed only if a handler formats the
record (:class:`omnihub.logs.JsonFormatter` merges them into the JSON line).

The request id is the caller's ``X-Request-ID`` when it is a plain token, else a new
one; it is sent back as ``X-Request-ID`` so a client can quote it.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security.key_material import KEY_PREFIX, parse_prefix
from api.telemetry import route_of

log = logging.getLogger("omnihub.access")

PRINCIPAL = "omnihub.principal"  # scope key: the authenticated caller, set by the guard
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_KEY_HEADERS = (b"authorization", b"x-api-key")


class AccessLine:
    """A finished request; rendered only when a handler formats its record."""

    __slots__ = ("_ms", "_request_id", "_scope", "_status")

    def __init__(self, scope: Scope, status: int, ms: float, request_id: str) -> None:
        self._scope, self._status, self._ms, self._request_id = scope, status, ms, request_id

    def __str__(self) -> str:
        return f"{self._scope['method']} {route_of(self._scope)} {self._status} {self._ms:.1f}ms"

    def __call__(self) -> dict[str, Any]:
        """The line's fields (see the module docstring)."""
        principal = self._scope.get(PRINCIPAL)
        prefix = principal.prefix if principal is not None else _presented_prefix(self._scope)
        return {
            "method": self._scope["method"],
            "path": route_of(self._scope),
            "status": self._status,
            "duration_ms": round(self._ms, 2),
            "request_id": self._request_id,
            "tenant_id": principal.tenant_id if principal is not None else None,
            "key_prefix": f"{KEY_PREFIX}_{prefix}" if prefix else None,
        }


def _presented_prefix(scope: Scope) -> str | None:
    """The prefix of a key the caller presented (a refused one): never its secret."""
    for name, value in scope.get("headers") or ():
        if name in _KEY_HEADERS:
            text = value.decode("latin-1")
            token = text[7:].strip() if text[:7].lower() == "bearer " else text.strip()
            found = parse_prefix(token)
            if found:
                return found
    return None


def _request_id(scope: Scope) -> bytes:
    for name, value in scope.get("headers") or ():
        if name == b"x-request-id" and _REQUEST_ID.fullmatch(value):
            return bytes(value)
    return uuid.uuid4().hex.encode()


class AccessLogMiddleware:
    """Logs every HTTP request once it has answered (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        started, status, rid = time.perf_counter(), 500, _request_id(scope)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", rid)]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            line = AccessLine(scope, status, (time.perf_counter() - started) * 1000, rid.decode())
            log.info("%s", line, extra={"fields": line})
