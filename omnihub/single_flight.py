"""Concurrent cache misses of one key share one load.

The API's short caches (a key's lookup, a tenant's tier, a kill switch) expire every
second or two; under load every request in flight misses at the same moment and each
would read Postgres or Redis for the same answer (with 32 clients, up to 32 reads per
expiry). :class:`SingleFlight` lets the first miss load and the others await its answer.

A miss joins a load only if that load started less than ``ttl_s`` ago, so an answer is
never older, counted from when its read was sent, than the cache would allow; with
``ttl_s = 0`` nothing is shared. The load runs as a task of its own: a caller cancelled
while waiting does not cancel it for the others, and its answer is still cached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """At most one load per key in flight (see the module docstring)."""

    def __init__(self) -> None:
        self._flights: dict[K, tuple[float, asyncio.Future[V]]] = {}

    async def load(
        self, key: K, asked_at: float, ttl_s: float, load: Callable[[], Awaitable[V]]
    ) -> V:
        """``load()``'s answer, or that of the load of ``key`` started within ``ttl_s``
        before ``asked_at`` and still running."""
        flight = self._flights.get(key)
        if flight is None or asked_at >= flight[0] + ttl_s:
            flight = (asked_at, asyncio.ensure_future(load()))
            self._flights[key] = flight
            flight[1].add_done_callback(lambda _: self._landed(key, flight))
        return await asyncio.shield(flight[1])

    def forget(self, key: K) -> None:
        """Let the next miss of ``key`` load afresh instead of joining the load in flight
        (whose answer may predate a change this process just made)."""
        self._flights.pop(key, None)

    def _landed(self, key: K, flight: tuple[float, asyncio.Future[V]]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if not flight[1].cancelled():
            flight[1].exception()  # retrieved: every waiter may have gone
