"""When each API key was last used, for ``omnihub keys list``.

One Redis hash (``<topic prefix>:keys:last_used``, key id -> ISO time) that each API
process writes at most once per key every ``every_s`` (a minute): the time shown is
precise to that, and a busy key costs one background ``HSET`` a minute per process
instead of a write per request. The write never delays the request and a failed one
is only logged: the time a key was last used is a hint for operators, not a record
(the audit log holds each use).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

_MAX_TRACKED = 100_000  # keys remembered per process before the memory is reset


def last_used_key(topic_prefix: str) -> str:
    """The Redis hash of the last uses."""
    return f"{topic_prefix}:keys:last_used"


class LastUsed:
    """Records a key's use in Redis, at most once per ``every_s`` per key and process."""

    def __init__(
        self,
        redis: Redis,
        topic_prefix: str,
        every_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._key = last_used_key(topic_prefix)
        self._every_s = every_s
        self._clock = clock
        self._written: dict[str, float] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def touch(self, key_id: str) -> None:
        """Note a use of ``key_id`` now (written in the background when due)."""
        now = self._clock()
        last = self._written.get(key_id)
        if last is not None and now - last < self._every_s:
            return
        if len(self._written) >= _MAX_TRACKED:
            self._written.clear()
        self._written[key_id] = now
        task = asyncio.create_task(self._write(key_id, datetime.now(UTC).isoformat()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Wait for the writes under way (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _write(self, key_id: str, at: str) -> None:
        try:
            await self._redis.hset(self._key, key_id, at)
        except (RedisError, OSError) as exc:
            self._written.pop(key_id, None)  # try again on the next use
            log.warning("could not record the last use of key %s: %r", key_id, exc)


async def last_uses(redis: Any, topic_prefix: str, key_ids: Sequence[str]) -> dict[str, datetime]:
    """When each of ``key_ids`` was last used (absent: never, or not since Redis forgot)."""
    if not key_ids:
        return {}
    values = await redis.hmget(last_used_key(topic_prefix), list(key_ids))
    return {
        key_id: datetime.fromisoformat(v.decode() if isinstance(v, bytes) else v)
        for key_id, v in zip(key_ids, values, strict=True)
        if v is not None
    }
