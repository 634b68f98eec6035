"""``Idempotency-Key`` support: a retried request returns the first answer.

The key is claimed atomically in Redis (``SET NX``) before appending, so two
concurrent requests with one key cannot both append. The run id is derived from
the tenant and the key as well, so even if Redis lost the record, a retried append
would carry the same event id and be recognisable downstream.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError


class IdempotencyUnavailable(Exception):
    """The idempotency store cannot be reached."""


@dataclass(frozen=True)
class Claim:
    """The state of a key: ``new`` (ours to act on), ``pending`` or ``done``."""

    state: Literal["new", "pending", "done"]
    fingerprint: str
    response: dict[str, Any] | None = None


def request_fingerprint(body: Any) -> str:
    """A stable hash of a request body, to catch one key reused for another request."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class IdempotencyStore(Protocol):
    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim: ...
    async def complete(
        self, scope: str, key: str, fingerprint: str, response: dict[str, Any]
    ) -> None: ...
    async def release(self, scope: str, key: str) -> None: ...


class RedisIdempotencyStore:
    """:class:`IdempotencyStore` in Redis with a TTL per key."""

    def __init__(self, redis: Redis, ttl_s: int, pending_ttl_s: int = 60) -> None:
        self._redis = redis
        self._ttl_s = ttl_s
        self._pending_ttl_s = pending_ttl_s  # a crashed request frees its key after this

    @staticmethod
    def _key(scope: str, key: str) -> str:
        return f"omnihub:idem:{scope}:{hashlib.sha256(key.encode()).hexdigest()}"

    async def claim(self, scope: str, key: str, fingerprint: str) -> Claim:
        """Claim ``key`` for a new request, or report what an earlier one left."""
        name = self._key(scope, key)
        pending = json.dumps({"state": "pending", "fingerprint": fingerprint})
        try:
            if await self._redis.set(name, pending, nx=True, ex=self._pending_ttl_s):
                return Claim("new", fingerprint)
            stored = await self._redis.get(name)
        except RedisError as exc:
            raise IdempotencyUnavailable(str(exc)) from exc
        if stored is None:  # expired between the two calls: try once more
            return await self.claim(scope, key, fingerprint)
        data = json.loads(stored)
        return Claim(data["state"], data["fingerprint"], data.get("response"))

    async def complete(
        self, scope: str, key: str, fingerprint: str, response: dict[str, Any]
    ) -> None:
        record = {"state": "done", "fingerprint": fingerprint, "response": response}
        try:
            await self._redis.set(self._key(scope, key), json.dumps(record), ex=self._ttl_s)
        except RedisError as exc:
            raise IdempotencyUnavailable(str(exc)) from exc

    async def release(self, scope: str, key: str) -> None:
        """Free a key whose request failed, so the client can retry it."""
        try:
            await self._redis.delete(self._key(scope, key))
        except RedisError:
            pass  # the pending claim expires on its own
