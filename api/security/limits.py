"""Per-key rate and concurrency limits, each one atomic Lua script in Redis.

Rate: a sliding-window log, one sorted set per key of request ids scored by arrival
time (Redis server time, so every API process shares one clock). A request is admitted
only if fewer than ``limit`` arrivals remain inside the window; check and insert happen
in one script, so a burst from many processes can never overshoot.

Concurrency: a sorted set of in-flight request ids scored by when their slot expires.
Acquire drops expired slots first, so a crashed API process leaks a slot for at most
``slot_ttl_ms``; release removes the id.

When Redis cannot answer, both fail closed (:class:`LimiterUnavailable`): a limit that
cannot be checked is not granted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

_RATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  count = count + 1
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window)
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {allowed, limit - count, reset}
"""

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 1
end
return 0
"""


class LimiterUnavailable(Exception):
    """Redis could not be asked; the request is refused rather than let through."""


@dataclass(frozen=True)
class RateDecision:
    """The answer for one request, with what the ``RateLimit-*`` headers report."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until a slot frees up

    def headers(self) -> dict[str, str]:
        """``RateLimit-Limit/Remaining/Reset`` (and ``Retry-After`` when refused)."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, self.reset_s))
        return out


class RedisRateLimiter:
    """At most ``limit`` requests per ``window_s`` for each key."""

    def __init__(self, redis: Redis, limit: int, window_s: float = 60.0) -> None:
        self._redis = redis
        self._limit = limit
        self._window_ms = int(window_s * 1000)
        self._script = redis.register_script(_RATE)

    async def hit(self, key_id: str, request_id: str) -> RateDecision:
        """Count one request of ``key_id`` if it fits; say whether it did."""
        try:
            allowed, remaining, reset_ms = await self._script(
                keys=[f"omnihub:ratelimit:{key_id}"],
                args=[self._window_ms, self._limit, request_id],
            )
        except RedisError as exc:
            raise LimiterUnavailable(str(exc)) from exc
        reset_s = math.ceil(max(0, int(reset_ms)) / 1000)
        return RateDecision(bool(allowed), self._limit, max(0, int(remaining)), reset_s)


class RedisConcurrencyLimiter:
    """At most ``limit`` requests of one key in flight at once."""

    def __init__(self, redis: Redis, limit: int, slot_ttl_s: float = 60.0) -> None:
        self._redis = redis
        self.limit = limit
        self._ttl_ms = int(slot_ttl_s * 1000)
        self._script = redis.register_script(_ACQUIRE)

    @staticmethod
    def _key(key_id: str) -> str:
        return f"omnihub:inflight:{key_id}"

    async def acquire(self, key_id: str, request_id: str) -> bool:
        """Take a slot for ``request_id``; False when all slots are taken."""
        try:
            got = await self._script(
                keys=[self._key(key_id)], args=[self.limit, self._ttl_ms, request_id]
            )
        except RedisError as exc:
            raise LimiterUnavailable(str(exc)) from exc
        return bool(got)

    async def release(self, key_id: str, request_id: str) -> None:
        """Give the slot back (it also expires on its own)."""
        try:
            await self._redis.zrem(self._key(key_id), request_id)
        except RedisError:
            pass  # the slot expires after its TTL
