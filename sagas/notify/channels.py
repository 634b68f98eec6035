"""The tenants' notification channels in Redis, folded from ``notification_channel_set``
by the notifier (rebuildable from the control topic), and the delivery claims that keep a
redelivered ``approval_requested`` from notifying twice."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from domain.events import NotificationChannelSet
from domain.privacy import ERASED

CLAIM_TTL_S = 7 * 24 * 3600


class RedisChannels:
    """``<prefix>:notify:channels:<tenant>`` (a hash by channel id) and the claims."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    def _key(self, tenant_id: str) -> str:
        return f"{self._prefix}:notify:channels:{tenant_id}"

    async def apply(self, event: NotificationChannelSet) -> None:
        """The channel set or removed (idempotent: applying it again changes nothing)."""
        key = self._key(event.envelope.tenant_id)
        if event.removed or event.target == ERASED:  # an erased target reaches no one
            await self._redis.hdel(key, event.channel_id)
            return
        body = {"channel_id": event.channel_id, "kind": event.kind, "target": event.target}
        await self._redis.hset(key, event.channel_id, json.dumps(body))

    async def forget(self, tenant_id: str) -> None:
        """Drop every channel of the tenant: their targets were erased."""
        await self._redis.delete(self._key(tenant_id))

    async def of(self, tenant_id: str) -> list[dict[str, Any]]:
        """The tenant's channels, by id."""
        raw = await self._redis.hgetall(self._key(tenant_id))
        return sorted((json.loads(v) for v in raw.values()), key=lambda c: c["channel_id"])

    async def claim(self, approval_id: str, channel_id: str) -> bool:
        """Whether this process is the first to deliver this approval to this channel.

        Claimed before delivering: a redelivered ``approval_requested`` (a rebalance, a
        restart) finds the claim and sends nothing; the price is that a crash between the
        claim and the delivery loses that one notification rather than doubling it.
        """
        key = f"{self._prefix}:notify:sent:{approval_id}:{channel_id}"
        return bool(await self._redis.set(key, "1", nx=True, ex=CLAIM_TTL_S))
