"""Per-key rate and concurrency limits, decided together by one atomic Lua script in Redis.

Rate: a sliding-window log, one sorted set per key of request ids scored by arrival
time (Redis server time, so every API process shares one clock). A request is admitted
only if fewer than ``limit`` arrivals remain inside the window; check and insert happen
in one script, so a burst from many processes can never overshoot.

Concurrency: a sorted set of in-flight request ids scored by when their slot expires.
Acquire drops expired slots first, so a crashed API process leaks a slot for at most
``slot_ttl_ms``; release removes the id.

One request is one script call (:meth:`RedisLimiter.admit`), one round trip: it always
counts the request against the rate (so probing with a key that lacks the scope costs
quota) and takes an in-flight slot in the same call only when the rate allows it and
the caller says the scope is granted (the scope check is local, made before the call).

When Redis cannot answer, the script fails closed (:class:`LimiterUnavailable`): a
limit that cannot be checked is not granted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

# KEYS: rate log, in-flight set. ARGV: window ms, rate limit, request id,
# scope granted (1/0), concurrency limit, slot ttl ms.
_ADMIT = """
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
local slot = 0
if allowed == 1 and ARGV[4] == '1' then
  local ttl = tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) < tonumber(ARGV[5]) then
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[3])
    redis.call('PEXPIRE', KEYS[2], ttl)
    slot = 1
  end
end
return {allowed, limit - count, reset, slot}
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


@dataclass(frozen=True)
class Admission:
    """One request's rate decision and whether it holds an in-flight slot."""

    rate: RateDecision
    slot: bool  # only ever True when the rate allowed it and the scope was granted


class RedisLimiter:
    """At most ``rate_limit`` requests per ``window_s`` and ``concurrency_limit`` in
    flight at once, for each key."""

    def __init__(
        self,
        redis: Redis,
        rate_limit: int,
        concurrency_limit: int,
        window_s: float = 60.0,
        slot_ttl_s: float = 60.0,
    ) -> None:
        self._redis = redis
        self.rate_limit = rate_limit
        self.concurrency_limit = concurrency_limit
        self._window_ms = int(window_s * 1000)
        self._ttl_ms = int(slot_ttl_s * 1000)
        self._script = redis.register_script(_ADMIT)

    @staticmethod
    def keys_of(key_id: str) -> tuple[str, str]:
        """The rate log and the in-flight set of ``key_id``. Both carry the key id as
        their hash tag, so Redis Cluster keeps them in one slot, as a script needs."""
        tag = "{" + key_id + "}"
        return f"omnihub:ratelimit:{tag}", f"omnihub:inflight:{tag}"

    async def admit(self, key_id: str, request_id: str, scope_granted: bool) -> Admission:
        """Count one request of ``key_id``; take a slot if it fits and ``scope_granted``."""
        try:
            allowed, remaining, reset_ms, slot = await self._script(
                keys=list(self.keys_of(key_id)),
                args=[
                    self._window_ms,
                    self.rate_limit,
                    request_id,
                    1 if scope_granted else 0,
                    self.concurrency_limit,
                    self._ttl_ms,
                ],
            )
        except RedisError as exc:
            raise LimiterUnavailable(str(exc)) from exc
        reset_s = math.ceil(max(0, int(reset_ms)) / 1000)
        rate = RateDecision(bool(allowed), self.rate_limit, max(0, int(remaining)), reset_s)
        return Admission(rate, bool(slot))

    async def release(self, key_id: str, request_id: str) -> None:
        """Give the slot back (it also expires on its own)."""
        try:
            await self._redis.zrem(self.keys_of(key_id)[1], request_id)
        except RedisError:
            pass  # the slot expires after its TTL
