"""Goals per month, per tenant: one Redis counter per tenant and calendar month (UTC).

:meth:`GoalQuota.take` grants up to ``n`` goals within the tier's monthly limit and
counts them, in one script (no two API processes can both take the last one); a goal
whose append then fails is given back. Retries answered from the idempotency store
never reach it, so a retried goal is counted once. The counter lives ~2 months, long
enough to be read for the month it counts. Redis not answering is
:class:`QuotaUnavailable` (fail closed, as the rate limits).
"""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

# KEYS: the month's counter. ARGV: wanted, limit (-1: unlimited), ttl s.
_TAKE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local want, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local grant = want
if limit >= 0 then grant = math.max(0, math.min(want, limit - used)) end
if grant > 0 then
  redis.call('INCRBY', KEYS[1], grant)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return {grant, used + grant}
"""
TTL_S = 62 * 24 * 3600


class QuotaUnavailable(Exception):
    """Redis could not be asked; no goal is granted."""


@dataclass(frozen=True)
class Taken:
    """How many goals were granted, and the month's count after them."""

    granted: int
    used: int


class GoalQuota:
    """Counts each tenant's goals per month against its tier's ``goals_per_month``."""

    def __init__(self, redis: Redis, namespace: str = "omnihub") -> None:
        self._redis = redis
        self._namespace = namespace  # the deployment's (its topic prefix), as sessions do
        self._script = redis.register_script(_TAKE)

    def key(self, tenant_id: str, month: str) -> str:
        """The counter of ``tenant_id`` for ``month`` (``YYYY-MM``)."""
        return f"omnihub:goals:{self._namespace}:{{{tenant_id}}}:{month}"

    async def take(self, tenant_id: str, month: str, n: int, limit: int | None) -> Taken:
        """Grant up to ``n`` goals within ``limit`` (None: unlimited) and count them."""
        try:
            granted, used = await self._script(
                keys=[self.key(tenant_id, month)], args=[n, -1 if limit is None else limit, TTL_S]
            )
        except RedisError as exc:
            raise QuotaUnavailable(str(exc)) from exc
        return Taken(int(granted), int(used))

    async def give_back(self, tenant_id: str, month: str, n: int) -> None:
        """Uncount ``n`` goals that were not recorded after all."""
        try:
            await self._redis.decrby(self.key(tenant_id, month), n)
        except RedisError:
            pass  # the count stays high by n: errs on refusing, never on granting
