"""A client built on first use and rebuilt after a failure to build.

Processes must start while a dependency is down (and report it), then work once it
is back; building clients lazily gives that without import-time side effects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    def __init__(
        self,
        factory: Callable[[], Awaitable[T]],
        closer: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self._factory = factory
        self._closer = closer
        self._value: T | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> T:
        """The client, building it now if needed; a failure to build propagates."""
        if self._value is not None:
            return self._value
        async with self._lock:
            if self._value is None:
                self._value = await self._factory()
            return self._value

    async def close(self) -> None:
        value, self._value = self._value, None
        if value is not None and self._closer is not None:
            await self._closer(value)
