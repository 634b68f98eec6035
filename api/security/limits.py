"""Rate and concurrency limits per key and per tenant, decided by one atomic Lua script.

The numbers are the tenant's tier's (:class:`Limits`, from :mod:`domain.tiers`), passed
with each request, so a tier change applies to the next request.

Rate: a sliding-window log, one sorted set of request ids scored by arrival time (Redis
server time, so every API process shares one clock), for the key and one for its
tenant. A request is admitted only if both have room; check and insert happen in one
script, so a burst from many processes can never overshoot.

Concurrency: a sorted set of in-flight request ids scored by when their slot expires,
for the key and for the tenant. Acquire drops expired slots first, so a crashed API
process leaks a slot for at most ``slot_ttl_ms``; release removes the id from both.

One request is one script call (:meth:`RedisLimiter.admit`), one round trip: it always
counts the request against the rate (so probing with a key that lacks the scope costs
quota) and takes the in-flight slots in the same call only when the rate allows it and
the caller says the scope is granted (the scope check is local, made before the call).
The answer says which limit refused (:data:`ENTITLEMENTS`), so the refusal can name it.

When Redis cannot answer, the script fails closed (:class:`LimiterUnavailable`): a
limit that cannot be checked is not granted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

# KEYS: key rate log, key in-flight set, tenant rate log, tenant in-flight set.
# ARGV: window ms, request id, scope granted (1/0), slot ttl ms, then the limits: rate
# per key, rate per tenant, in flight per key, in flight per tenant (0: no tenant limit).
_ADMIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window, id, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[4])
local krate, trate = tonumber(ARGV[5]), tonumber(ARGV[6])
local kbusy, tbusy = tonumber(ARGV[7]), tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local kc, tc = redis.call('ZCARD', KEYS[1]), 0
if trate > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
  tc = redis.call('ZCARD', KEYS[3])
end
local refused = ''
if kc >= krate then
  refused = 'rate:key'
elseif trate > 0 and tc >= trate then
  refused = 'rate:tenant'
end
local allowed = 0
if refused == '' then
  redis.call('ZADD', KEYS[1], now, id)
  kc = kc + 1
  if trate > 0 then redis.call('ZADD', KEYS[3], now, id); tc = tc + 1 end
  allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window)
if trate > 0 then redis.call('PEXPIRE', KEYS[3], window) end
local log, limit, count = KEYS[1], krate, kc
if refused == 'rate:tenant' or (refused == '' and trate > 0 and trate - tc < krate - kc) then
  log, limit, count = KEYS[3], trate, tc
end
local oldest = redis.call('ZRANGE', log, 0, 0, 'WITHSCORES')
local reset = window
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
local slot = 0
if allowed == 1 and ARGV[3] == '1' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= kbusy then refused = 'busy:key' end
  if refused == '' and tbusy > 0 then
    redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
    if redis.call('ZCARD', KEYS[4]) >= tbusy then refused = 'busy:tenant' end
  end
  if refused == '' then
    redis.call('ZADD', KEYS[2], now + ttl, id)
    redis.call('PEXPIRE', KEYS[2], ttl)
    if tbusy > 0 then
      redis.call('ZADD', KEYS[4], now + ttl, id)
      redis.call('PEXPIRE', KEYS[4], ttl)
    end
    slot = 1
  end
end
return {allowed, limit, limit - count, reset, slot, refused}
"""

ENTITLEMENTS: Mapping[str, str] = {
    "rate:key": "requests_per_minute_per_key",
    "rate:tenant": "requests_per_minute_per_tenant",
    "busy:key": "in_flight_per_key",
    "busy:tenant": "in_flight_per_tenant",
}
"""Which entitlement of :mod:`domain.tiers` each refusal of the script is."""

NO_TENANT = "-"


@dataclass(frozen=True)
class Limits:
    """One request's limits (a tenant limit of 0 means none)."""

    rate_per_key: int
    in_flight_per_key: int
    rate_per_tenant: int = 0
    in_flight_per_tenant: int = 0

    @classmethod
    def of(
        cls, entitlements: Mapping[str, object], rate: int | None = None, busy: int | None = None
    ) -> Limits:
        """A tier's limits, each replaced by ``rate`` / ``busy`` when given (load tests)."""

        def pick(name: str, override: int | None) -> int:
            value = entitlements[name]
            return override if override is not None else int(value)  # type: ignore[call-overload]

        return cls(
            rate_per_key=pick("requests_per_minute_per_key", rate),
            in_flight_per_key=pick("in_flight_per_key", busy),
            rate_per_tenant=pick("requests_per_minute_per_tenant", rate),
            in_flight_per_tenant=pick("in_flight_per_tenant", busy),
        )

    def value(self, entitlement: str) -> int:
        """The number this request was held to for ``entitlement``."""
        return {
            "requests_per_minute_per_key": self.rate_per_key,
            "requests_per_minute_per_tenant": self.rate_per_tenant,
            "in_flight_per_key": self.in_flight_per_key,
            "in_flight_per_tenant": self.in_flight_per_tenant,
        }[entitlement]


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
    refused_by: str = ""  # the entitlement that refused it (rate or slot), if any


class RedisLimiter:
    """Requests per ``window_s`` and in flight at once, per key and per tenant; the
    numbers come with each request (:class:`Limits`), or are the ones given here."""

    def __init__(
        self,
        redis: Redis,
        rate_limit: int,
        concurrency_limit: int,
        window_s: float = 60.0,
        slot_ttl_s: float = 60.0,
    ) -> None:
        self._redis = redis
        self.default = Limits(rate_limit, concurrency_limit)
        self._window_ms = int(window_s * 1000)
        self._ttl_ms = int(slot_ttl_s * 1000)
        self._script = redis.register_script(_ADMIT)

    @staticmethod
    def keys_of(key_id: str, tenant_id: str = NO_TENANT) -> tuple[str, str, str, str]:
        """The rate log and in-flight set of ``key_id``, then of its tenant. All four carry
        the tenant as their hash tag, so Redis Cluster keeps them in one slot, as a
        script needs."""
        tag = "{" + tenant_id + "}"
        return (
            f"omnihub:ratelimit:{tag}:key:{key_id}",
            f"omnihub:inflight:{tag}:key:{key_id}",
            f"omnihub:ratelimit:{tag}",
            f"omnihub:inflight:{tag}",
        )

    async def admit(
        self,
        key_id: str,
        request_id: str,
        scope_granted: bool,
        *,
        tenant_id: str = NO_TENANT,
        limits: Limits | None = None,
    ) -> Admission:
        """Count one request of ``key_id``; take its slots if they fit and ``scope_granted``."""
        lim = limits or self.default
        try:
            allowed, limit, remaining, reset_ms, slot, refused = await self._script(
                keys=list(self.keys_of(key_id, tenant_id)),
                args=[
                    self._window_ms,
                    request_id,
                    1 if scope_granted else 0,
                    self._ttl_ms,
                    lim.rate_per_key,
                    lim.rate_per_tenant,
                    lim.in_flight_per_key,
                    lim.in_flight_per_tenant,
                ],
            )
        except RedisError as exc:
            raise LimiterUnavailable(str(exc)) from exc
        reset_s = math.ceil(max(0, int(reset_ms)) / 1000)
        rate = RateDecision(bool(allowed), int(limit), max(0, int(remaining)), reset_s)
        by = refused.decode() if isinstance(refused, bytes) else str(refused)
        return Admission(rate, bool(slot), ENTITLEMENTS.get(by, ""))

    async def release(self, key_id: str, request_id: str, tenant_id: str = NO_TENANT) -> None:
        """Give the slots back (they also expire on their own)."""
        _, key_slots, _, tenant_slots = self.keys_of(key_id, tenant_id)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(key_slots, request_id)
                pipe.zrem(tenant_slots, request_id)
                await pipe.execute()
        except RedisError:
            pass  # the slots expire after their TTL
