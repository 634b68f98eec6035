"""Open live streams per key, counted across every API process by leases in Redis.

A stream holds a lease: a member of the key's sorted set, scored by when it lapses. One
Lua script drops lapsed leases, counts the rest and adds the new one, so two processes
admitting at once can never both take the last slot. The stream renews its lease while
it runs and drops it when it ends; a process killed mid-stream leaves a lease that lapses
by itself within ``lease_s``, so a crash never locks a key out for long.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

# Times come from Redis's clock (TIME), so processes with skewed clocks agree.
# KEYS[1]: the key's leases. ARGV: lease ms, member, limit.
_TAKE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# Renew only a lease still held (a lapsed one was dropped, and its slot may be taken).
# Every lease lasts as long, so the newest lapse time is the set's.
_RENEW = """
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) then return 0 end
local t = redis.call('TIME')
redis.call('ZADD', KEYS[1], t[1] * 1000 + math.floor(t[2] / 1000) + ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


class StreamLease:
    """One stream's slot: renew it while the stream runs, release it once at the end."""

    def __init__(self, leases: StreamLeases, name: str, member: str) -> None:
        self._leases, self._name, self.member = leases, name, member
        self.renew_every_s = leases.lease_s / 3

    async def renew(self) -> bool:
        """Push the lapse time on; False when the lease had already lapsed."""
        return await self._leases.renew(self._name, self.member)

    async def release(self) -> None:
        """Give the slot back."""
        await self._leases.redis.zrem(self._name, self.member)


class StreamLeases:
    """At most ``limit`` open streams per key, whatever process serves them."""

    def __init__(self, redis: Redis, limit: int, lease_s: float = 30.0) -> None:
        self.redis, self.limit, self.lease_s = redis, limit, lease_s
        self._lease_ms = int(lease_s * 1000)
        self._take = redis.register_script(_TAKE)
        self._renew = redis.register_script(_RENEW)

    @staticmethod
    def name(key_id: str) -> str:
        """The Redis key of ``key_id``'s leases."""
        return f"omnihub:streams:{{{key_id}}}"

    async def take(self, key_id: str) -> StreamLease | None:
        """A lease for one more stream of ``key_id``; None when all its slots are held."""
        name, member = self.name(key_id), uuid.uuid4().hex
        if not await self._take(keys=[name], args=[self._lease_ms, member, self.limit]):
            return None
        return StreamLease(self, name, member)

    async def renew(self, name: str, member: str) -> bool:
        """Push ``member``'s lapse time on, if it still holds its slot."""
        return bool(await self._renew(keys=[name], args=[self._lease_ms, member]))
