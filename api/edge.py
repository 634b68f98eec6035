"""What every request meets before routing, in one pure ASGI layer (one hop, not three):

- every answer, errors included, gets ``X-Content-Type-Options: nosniff``;
- ``OPTIONS`` on a known path answers 204 with an ``Allow`` header naming every method of
  that path (:func:`api.allow.allowed_methods`);
- a query parameter given twice (``until=...&until=false``) is a 422 problem naming it:
  every query parameter OmniHub declares is a single value, and FastAPI would silently
  take one of them.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.allow import allowed_methods
from api.problems import problem_response
from domain.storable import storable_text

NOSNIFF = (b"x-content-type-options", b"nosniff")


class EdgeMiddleware:
    """Pure ASGI middleware; see the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_nosniff(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), NOSNIFF]}
            await send(message)

        methods = allowed_methods(scope["app"], scope) if scope["method"] == "OPTIONS" else []
        if methods:
            headers = [(b"allow", ", ".join(methods).encode()), (b"content-length", b"0")]
            await send_nosniff({"type": "http.response.start", "status": 204, "headers": headers})
            await send_nosniff({"type": "http.response.body", "body": b""})
            return
        repeated = _repeated(scope.get("query_string", b""))
        if repeated:
            await _refuse_repeated(repeated, scope, receive, send_nosniff)
            return
        await self.app(scope, receive, send_nosniff)


def _repeated(query: bytes) -> dict[str, int]:
    if not query:  # the common case costs nothing
        return {}
    counts = Counter(k for k, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True))
    return {k: n for k, n in sorted(counts.items()) if n > 1}


async def _refuse_repeated(
    repeated: dict[str, int], scope: Scope, receive: Receive, send: Send
) -> None:
    name, times = next(iter(repeated.items()))
    errors: list[dict[str, Any]] = [
        {"location": ["query", storable_text(k)], "message": "repeated", "type": "repeated"}
        for k in repeated
    ]
    response = problem_response(
        422,
        "repeated-parameter",
        f"query.{storable_text(name)}: given {times} times; give it once",
        scope.get("path", ""),
        errors=errors,
    )
    await response(scope, receive, send)
