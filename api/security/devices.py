"""Requests signed by a trusted device: the device's key instead of an API key.

A request carrying ``X-OmniHub-Device`` is authenticated by its Ed25519 signature
(:mod:`domain.device_signature`) against the ``trusted_devices`` projection: accepted
only while the device is registered (not revoked), within the time window, and with a
nonce not used before. The caller then acts with the device's scopes. Lookups are cached
as briefly as API keys' (``auth_cache_ttl_s``); the revoking process drops its entry at
once.
"""

from __future__ import annotations

import time
from typing import Protocol

import asyncpg
from fastapi import Request
from redis.asyncio import Redis

from api.security.principal import UNAUTHENTICATED_TENANT, AuthResult, Principal
from api.security.tenancy import owner_connection
from domain.device_signature import HEADERS, DeviceRefused, parse, verify
from omnihub.lazy import Lazy
from projections import devices
from projections.devices import StoredDevice


class DeviceLookup(Protocol):
    """Finds a registered device by its id."""

    async def by_id(self, device_id: str) -> StoredDevice | None:
        """The device, of any tenant, or None."""
        ...


class PostgresDeviceLookup:
    """:class:`DeviceLookup` over the ``trusted_devices`` projection."""

    def __init__(self, pool: Lazy[asyncpg.Pool], schema: str) -> None:
        self._pool = pool
        self._schema = schema

    async def by_id(self, device_id: str) -> StoredDevice | None:
        async with owner_connection(await self._pool.get(), self._schema) as conn:
            return await devices.by_id(conn, device_id)


class DeviceAuthenticator:
    """Checks device-signed requests; nonces are single use in Redis for the window."""

    def __init__(
        self,
        lookup: DeviceLookup,
        redis: Redis,
        *,
        window_s: int,
        cache_ttl_s: float,
        prefix: str,
    ) -> None:
        self._lookup = lookup
        self._redis = redis
        self._window = window_s
        self._ttl = cache_ttl_s
        self._prefix = prefix
        self._cache: dict[str, tuple[float, StoredDevice | None]] = {}

    @staticmethod
    def presented(request: Request) -> bool:
        """Whether the request claims to be signed by a device."""
        return HEADERS[0] in request.headers

    def forget(self, device_id: str) -> None:
        """Drop a cached lookup (after this process revoked the device)."""
        self._cache.pop(device_id, None)

    async def authenticate(self, request: Request) -> AuthResult:
        """The device's principal, or the reason the request proves nothing.

        Raises ``RedisError`` when the nonce cannot be checked (the caller fails closed).
        """
        headers = {h: request.headers.get(h, "") for h in HEADERS}
        try:
            signed = parse(
                request.method, request.url.path, request.url.query, await request.body(), headers
            )
        except DeviceRefused as refused:
            return AuthResult(None, refused.reason, UNAUTHENTICATED_TENANT, "anonymous")
        subject = f"device:{signed.device_id}"
        stored = await self._find(signed.device_id)
        if stored is None:
            return AuthResult(None, "unknown", UNAUTHENTICATED_TENANT, subject)
        if stored.revoked_at is not None:
            return AuthResult(None, "revoked", stored.tenant_id, subject)
        try:
            verify(signed, stored.public_key, time.time(), self._window)
        except DeviceRefused as refused:
            return AuthResult(None, refused.reason, stored.tenant_id, subject)
        # Only a valid signature spends its nonce: nobody else can burn a device's nonces.
        key = f"{self._prefix}:devnonce:{signed.device_id}:{signed.nonce}"
        if not await self._redis.set(key, b"1", nx=True, ex=2 * self._window):
            return AuthResult(None, "replayed", stored.tenant_id, subject)
        principal = Principal(
            f"device:{stored.device_id}",
            stored.device_id,
            stored.tenant_id,
            frozenset(stored.scopes),
            kind="device",
        )
        return AuthResult(principal, "ok", stored.tenant_id, subject)

    async def _find(self, device_id: str) -> StoredDevice | None:
        now = time.monotonic()
        hit = self._cache.get(device_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        stored = await self._lookup.by_id(device_id)
        if len(self._cache) > 10_000:
            self._cache.clear()  # bounded: made-up ids must not grow memory
        if self._ttl > 0:
            self._cache[device_id] = (now + self._ttl, stored)
        return stored
