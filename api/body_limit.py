"""Refuses request bodies over the limit before the application reads them."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_JSON, TYPE_BASE


class BodyLimitMiddleware:
    """Pure ASGI middleware.

    A declared ``Content-Length`` over the limit is refused at once, unread (the
    server itself holds a body to its declared length). A body without one (chunked)
    is read up to the limit before the application sees it, and refused as soon as
    it passes the limit, so no more than ``max_bytes`` is ever held.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(scope, send)
                return
            await self.app(scope, receive, send)
            return
        buffered = await self._read_up_to_limit(receive)
        if buffered is None:
            await self._refuse(scope, send)
            return
        await self.app(scope, _replay(buffered, receive), send)

    async def _read_up_to_limit(self, receive: Receive) -> list[Message] | None:
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _refuse(self, scope: Scope, send: Send) -> None:
        body: dict[str, Any] = {
            "type": TYPE_BASE + "body-too-large",
            "title": "Content Too Large",
            "status": 413,
            "detail": f"request body exceeds {self.max_bytes} bytes",
            "instance": scope.get("path", ""),
        }
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        return pending.pop(0) if pending else await receive()

    return replay
