"""Which methods a path answers: the ``Allow`` header of an ``OPTIONS`` or a 405.

Starlette's router names the methods of the first route whose path matches, but one path
may have several routes (``GET`` and ``POST /api/v1/approvals/{id}``); this asks them all.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Receive, Scope, Send

CANDIDATES = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route of ``app`` answers at ``scope``'s path (with ``OPTIONS``),
    sorted; empty when no route has that path."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, Mount):  # static assets: read-only
            if route.matches({**scope, "method": "GET"})[0] is not Match.NONE:
                methods |= {"GET", "HEAD"}
            continue
        for method in CANDIDATES:
            if route.matches({**scope, "method": method})[0] is Match.FULL:
                methods.add(method)
    return sorted(methods | {"OPTIONS"}) if methods else []


class OptionsMiddleware:
    """Answers ``OPTIONS`` for any known path with 204 and a true ``Allow`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "OPTIONS":
            await self.app(scope, receive, send)
            return
        methods = allowed_methods(scope["app"], scope) if "app" in scope else []
        if not methods:  # unknown path: the app's own 404 problem
            await self.app(scope, receive, send)
            return
        headers = [(b"allow", ", ".join(methods).encode()), (b"content-length", b"0")]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})


class NoSniffMiddleware:
    """``X-Content-Type-Options: nosniff`` on every answer, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [
                        *message.get("headers", []),
                        (b"x-content-type-options", b"nosniff"),
                    ],
                }
            await send(message)

        await self.app(scope, receive, send_with_header)
