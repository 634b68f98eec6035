"""The data keys in Postgres (``privacy_keys``), wrapped by the key-encryption key.

A data key is 32 random bytes (AES-256-GCM), one per subject: the tenant's own, or a
data subject's named in a request. It is stored wrapped (AES-GCM under the KEK, the
key id as associated data) with the KEK's id, so rotating the KEK re-wraps the rows and
never touches the log. Erasure sets ``wrapped`` to NULL: the ciphertext in the log can
never be opened again. The store opens its own small pool on first use and applies its
migrations (0400-0499), so any process that appends can seal.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.privacy import subject_hash
from omnihub.settings import Settings
from projections.migrate import apply_migrations, quote_ident
from streams.privacy import Privacy
from streams.schema_registry import SchemaRegistry


@dataclass(frozen=True)
class Keks:
    """The key-encryption keys: the current one wraps, older ones still unwrap."""

    current: bytes
    older: tuple[bytes, ...] = ()

    @staticmethod
    def id_of(kek: bytes) -> str:
        return hashlib.sha256(b"omnihub-kek:" + kek).hexdigest()[:16]

    def by_id(self, kek_id: str) -> bytes | None:
        return next((k for k in (self.current, *self.older) if self.id_of(k) == kek_id), None)


def keks_from(settings: Settings) -> Keks:
    """The KEKs from ``OMNIHUB_PRIVACY_KEK`` (base64, 32 bytes) and
    ``OMNIHUB_PRIVACY_OLD_KEKS``; without one, a development KEK generated once into the
    state folder (``privacy.kek``)."""
    text = settings.privacy_kek or _dev_kek(settings.state_dir / "privacy.kek")
    older = tuple(base64.b64decode(k) for k in settings.privacy_old_keks)
    current = base64.b64decode(text)
    if len(current) != 32:
        raise ValueError("OMNIHUB_PRIVACY_KEK must be 32 bytes, base64-encoded")
    return Keks(current, older)


def _dev_kek(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(32)).decode())
    return path.read_text().strip()


@dataclass
class Erased:
    """One destroyed key and the runs it sealed."""

    key_id: str
    tenant_id: str
    scope: str
    run_ids: list[str] = field(default_factory=list)


class PgKeyStore:
    """:class:`streams.privacy.KeyStore` on Postgres, plus erasure and KEK rotation."""

    def __init__(self, settings: Settings, keks: Keks | None = None) -> None:
        self._dsn = settings.postgres_dsn
        self._schema = settings.projections_schema
        self._settings = settings
        self._given_keks = keks  # else read (or, in development, made) on first use
        self._pool: asyncpg.Pool | None = None
        # Each subject's live key, briefly: a new run then costs one statement (its bind).
        self._subjects: dict[tuple[str, str], tuple[str, bytes, float]] = {}
        self.ttl_s = 30.0

    @property
    def _keks(self) -> Keks:
        if self._given_keks is None:
            self._given_keks = keks_from(self._settings)
        return self._given_keks

    async def _conn_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            pool = await asyncpg.create_pool(self._dsn, min_size=1, max_size=2, timeout=5)
            async with pool.acquire() as conn:
                await apply_migrations(conn, schema=self._schema, select=_privacy_range)
            self._pool = pool
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _t(self, table: str) -> str:
        return f"{quote_ident(self._schema)}.{table}"

    async def key_for_run(
        self, tenant_id: str, run_id: str, subject: str | None, new_run: bool = False
    ) -> tuple[str, bytes]:
        pool = await self._conn_pool()
        async with pool.acquire() as conn:
            if not new_run:  # a run's later events use the key its goal was sealed with
                row = await conn.fetchrow(
                    f"SELECT k.key_id, k.wrapped, k.kek_id FROM {self._t('privacy_run_keys')} r"
                    f" JOIN {self._t('privacy_keys')} k USING (key_id)"
                    " WHERE r.run_id = $1 AND k.wrapped IS NOT NULL",
                    run_id,
                )
                if row is not None:
                    return row["key_id"], self._unwrap(row["key_id"], row["kek_id"], row["wrapped"])
            for _ in range(2):
                key_id, key = await self._subject_key(conn, tenant_id, subject)
                if await conn.fetchval(self._bind_sql(), run_id, key_id, tenant_id):
                    return key_id, key
                # Erased since it was cached: the subject's next key seals from now on.
                self._subjects.pop((tenant_id, subject_hash(tenant_id, subject)), None)
        raise LookupError(f"no live data key for {run_id}")

    def _bind_sql(self) -> str:
        # Binds the run only to a live key, in one statement (no transaction round trips).
        return (
            f"INSERT INTO {self._t('privacy_run_keys')} (run_id, key_id, tenant_id)"
            f" SELECT $1, $2, $3 WHERE EXISTS (SELECT 1 FROM {self._t('privacy_keys')}"
            " WHERE key_id = $2 AND wrapped IS NOT NULL)"
            # A stream every tenant shares (killswitch-<feature>) names its last sealer.
            " ON CONFLICT (run_id) DO UPDATE SET key_id = EXCLUDED.key_id,"
            " tenant_id = EXCLUDED.tenant_id RETURNING key_id"
        )

    async def _subject_key(
        self, conn: asyncpg.Connection, tenant_id: str, subject: str | None
    ) -> tuple[str, bytes]:
        digest = subject_hash(tenant_id, subject)
        now = time.monotonic()
        cached = self._subjects.get((tenant_id, digest))
        if cached is not None and now - cached[2] < self.ttl_s:
            return cached[0], cached[1]
        key_id, key = uuid.uuid4().hex, os.urandom(32)
        # Two processes may create a subject's first key at once: one insert wins.
        await conn.execute(
            f"INSERT INTO {self._t('privacy_keys')}"
            " (key_id, tenant_id, subject_hash, scope, kek_id, wrapped)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            key_id,
            tenant_id,
            digest,
            "tenant" if subject is None else "subject",
            Keks.id_of(self._keks.current),
            self._wrap(key_id, key),
        )
        row = await conn.fetchrow(
            f"SELECT key_id, kek_id, wrapped FROM {self._t('privacy_keys')}"
            " WHERE tenant_id = $1 AND subject_hash = $2 AND erased_at IS NULL",
            tenant_id,
            digest,
        )
        found = row["key_id"], self._unwrap(row["key_id"], row["kek_id"], row["wrapped"])
        self._subjects[(tenant_id, digest)] = (*found, now)
        return found

    async def run_key(self, run_id: str) -> tuple[str, bytes | None] | None:
        """The key ``run_id`` is bound to (None once erased), or None if it is bound to
        none; never binds (:class:`sagas.payload_codec.RunKeys`)."""
        pool = await self._conn_pool()
        row = await pool.fetchrow(
            f"SELECT k.key_id, k.wrapped, k.kek_id FROM {self._t('privacy_run_keys')} r"
            f" JOIN {self._t('privacy_keys')} k USING (key_id) WHERE r.run_id = $1",
            run_id,
        )
        if row is None:
            return None
        if row["wrapped"] is None:
            return row["key_id"], None
        return row["key_id"], self._unwrap(row["key_id"], row["kek_id"], row["wrapped"])

    async def keys(self, key_ids: Sequence[str]) -> Mapping[str, bytes | None]:
        pool = await self._conn_pool()
        rows = await pool.fetch(
            f"SELECT key_id, kek_id, wrapped FROM {self._t('privacy_keys')}"
            " WHERE key_id = ANY($1::text[]) AND wrapped IS NOT NULL",
            list(key_ids),
        )
        found = {r["key_id"]: self._unwrap(r["key_id"], r["kek_id"], r["wrapped"]) for r in rows}
        return {k: found.get(k) for k in key_ids}

    async def erase(
        self, *, tenant_id: str | None, subject: str | None, requested_by: str
    ) -> list[Erased]:
        """Destroy the live keys of a data subject (in every tenant), or every key of a
        tenant; return them with the runs they sealed."""
        pool = await self._conn_pool()
        if subject is not None:  # within one tenant when it is named too
            where, arg = "subject_hash = $1", subject_hash("", subject)
            if tenant_id is not None:
                where += f" AND tenant_id = {quote_literal(tenant_id)}"
        elif tenant_id is not None:
            where, arg = "tenant_id = $1", tenant_id
        else:
            raise ValueError("name a subject or a tenant")
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                # The subject's hash goes too: nothing left says whose key it was.
                f"UPDATE {self._t('privacy_keys')} SET wrapped = NULL, kek_id = NULL,"
                " subject_hash = 'erased:' || key_id,"
                f" erased_at = now(), erased_by = $2 WHERE {where} AND erased_at IS NULL"
                " RETURNING key_id, tenant_id, scope",
                arg,
                requested_by,
            )
            out = [Erased(r["key_id"], r["tenant_id"], r["scope"]) for r in rows]
            for erased in out:
                runs = await conn.fetch(
                    f"SELECT run_id FROM {self._t('privacy_run_keys')} WHERE key_id = $1"
                    " ORDER BY run_id",
                    erased.key_id,
                )
                erased.run_ids = [r["run_id"] for r in runs]
        return out

    async def rewrap(self) -> int:
        """Re-wrap every live key not wrapped by the current KEK; the count re-wrapped."""
        pool = await self._conn_pool()
        current = Keks.id_of(self._keks.current)
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT key_id, kek_id, wrapped FROM {self._t('privacy_keys')}"
                " WHERE wrapped IS NOT NULL AND kek_id <> $1 FOR UPDATE",
                current,
            )
            for r in rows:
                key = self._unwrap(r["key_id"], r["kek_id"], r["wrapped"])
                await conn.execute(
                    f"UPDATE {self._t('privacy_keys')} SET kek_id = $2, wrapped = $3"
                    " WHERE key_id = $1",
                    r["key_id"],
                    current,
                    self._wrap(r["key_id"], key),
                )
        return len(rows)

    def _wrap(self, key_id: str, key: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self._keks.current).encrypt(nonce, key, key_id.encode())

    def _unwrap(self, key_id: str, kek_id: str, wrapped: bytes) -> bytes:
        kek = self._keks.by_id(kek_id)
        if kek is None:
            raise LookupError(
                f"data key {key_id} is wrapped by KEK {kek_id}, which is neither "
                "OMNIHUB_PRIVACY_KEK nor in OMNIHUB_PRIVACY_OLD_KEKS"
            )
        return AESGCM(kek).decrypt(wrapped[:12], wrapped[12:], key_id.encode())


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _privacy_range(migration: object) -> bool:
    number = getattr(migration, "number", 0)
    return 400 <= number <= 499


def privacy_for(settings: Settings, registry: SchemaRegistry) -> Privacy:
    """The sealer and opener a process wires into its appender and consumers."""
    return Privacy(registry, PgKeyStore(settings))
