"""Wallet sign-in (SIWE): single-use nonces in Redis, and the verification that uses them.

A nonce is issued for one tenant and lives ``ttl_s`` (5 minutes). Consuming it is one
Lua script, so of two concurrent verifications with the same nonce exactly one wins. A
consumed nonce is not deleted but marked used until its expiry, so a replay within that
time is refused as ``replayed`` rather than ``nonce_unknown`` (after it, as unknown:
either way never accepted).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Literal

from redis.asyncio import Redis

from domain.siwe import Expectation, SiweMessage, SiweRefused, check

Consumed = Literal["ok", "unknown", "replayed", "foreign"]

# KEYS[1] nonce key; ARGV[1] "issued:<tenant>", ARGV[2] "used:<tenant>".
_CONSUME = """
local value = redis.call('GET', KEYS[1])
if not value then return 'unknown' end
if value == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 'ok'
end
if string.sub(value, 1, 5) == 'used:' then return 'replayed' end
return 'foreign'
"""


class RedisNonceStore:
    """SIWE nonces: issued per tenant, consumed once, expiring after ``ttl_s``."""

    def __init__(self, redis: Redis, ttl_s: int = 300, prefix: str = "omnihub:siwe:nonce:"):
        self._redis = redis
        self.ttl_s = ttl_s
        self._prefix = prefix
        self._consume = redis.register_script(_CONSUME)

    async def issue(self, tenant_id: str) -> str:
        """A fresh nonce for ``tenant_id``: 32 hex characters (EIP-4361: alphanumeric)."""
        while True:
            nonce = secrets.token_hex(16)
            key = self._prefix + nonce
            if await self._redis.set(key, f"issued:{tenant_id}", nx=True, ex=self.ttl_s):
                return nonce  # NX: a (vanishingly unlikely) collision draws again

    async def consume(self, nonce: str, tenant_id: str) -> Consumed:
        """Use ``nonce`` for ``tenant_id``, atomically: ``ok`` only the first time."""
        args = [f"issued:{tenant_id}", f"used:{tenant_id}"]
        result = await self._consume(keys=[self._prefix + nonce], args=args)
        text = result.decode() if isinstance(result, bytes) else str(result)
        if text not in ("ok", "unknown", "replayed", "foreign"):
            raise RuntimeError(f"unexpected nonce script answer {text!r}")
        return text  # type: ignore[return-value]


class WalletSignIn:
    """Checks a signed SIWE message for a tenant, then consumes its nonce."""

    def __init__(self, nonces: RedisNonceStore, expected: Expectation) -> None:
        self.nonces = nonces
        self.expected = expected

    async def verify(
        self, text: str, signature: str, tenant_id: str, now: datetime | None = None
    ) -> SiweMessage:
        """The verified message; raises ``SiweRefused`` with the reason.

        The nonce is consumed last, so only a message that passed every other check can
        use it up.
        """
        message = check(text, signature, self.expected, now or datetime.now(UTC))
        consumed = await self.nonces.consume(message.nonce, tenant_id)
        if consumed == "replayed":
            raise SiweRefused("replayed", "this nonce was already used")
        if consumed != "ok":
            raise SiweRefused("nonce_unknown", "this nonce was not issued here, or expired")
        return message

    def expiry(self, now: datetime) -> datetime:
        """When a nonce issued ``now`` stops being accepted."""
        return now + timedelta(seconds=self.nonces.ttl_s)
