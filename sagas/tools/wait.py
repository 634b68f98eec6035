"""``wait``: a timed pause (a stand-in for slow work), heartbeating as it goes."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from sagas.tools.base import JsonObject, ToolCall, ToolDomainError, require

MAX_WAIT_S = 3600.0


class WaitTool:
    """Waits ``seconds`` (at most an hour). Cancellable; nothing to undo."""

    name = "wait"
    compensation = "noop"
    description = 'Pause. arguments: {"seconds": number up to 3600}.'

    def __init__(self, tick_s: float = 1.0) -> None:
        self._tick_s = tick_s

    async def run(self, call: ToolCall) -> JsonObject:
        seconds = float(require(call.arguments, "seconds", (int, float)))
        if not 0 <= seconds <= MAX_WAIT_S:
            raise ToolDomainError(f"seconds must be in [0, {MAX_WAIT_S}], got {seconds}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(self._tick_s, left))
            call.heartbeat(left)
        return {"waited_s": seconds}

    async def compensate(self, call: ToolCall, result: Mapping[str, Any] | None) -> JsonObject:
        return {"noop": True}
