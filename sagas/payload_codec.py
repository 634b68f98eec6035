"""Sealing Temporal's payloads with the run's data key (crypto-shredding, issue 13).

Temporal keeps a workflow's inputs, signals, query answers, activity arguments and
results and failure details in its history, in its own database. :class:`SealingCodec`
is a temporalio ``PayloadCodec`` that seals every such payload with the data key that
seals the run in the log, so an erasure (which destroys that key) reaches the history
too.

- **Which key.** Temporal tells the codec which workflow a payload belongs to
  (``WorkflowSerializationContext`` / ``ActivitySerializationContext``, through
  ``with_context``), and a run's workflow id is its run id (the saga bridge starts
  ``AgentWorkflow`` with ``id=run_id``). The key is the one its goal was sealed with
  (``privacy_run_keys``), read through :class:`RunKeys`.
- **The format.** A sealed payload has metadata ``encoding: binary/omnihub-sealed`` and
  ``omnihub-key: <key id>``; its data is a 12-byte nonce and the AES-256-GCM ciphertext of
  the whole original payload (metadata and data), with the key id as associated data.
  Opening needs only the key id, so it needs no context.
- **What passes through.** A payload without that encoding is returned as is (histories
  recorded before the codec, tests' histories). A payload with no workflow in its context
  (none of OmniHub's: a client call that names no workflow) and a payload of a run that
  is bound to no key (a workflow started without a goal in the log: tests, benchmarks;
  its events are not sealed in the log either) stay in the clear.
- **After an erasure.** Opening raises :class:`PayloadErased`: the history cannot be read,
  and a worker cannot go on with the run (the saga bridge terminates it on
  ``subject_erased``). Sealing for an erased run uses a throwaway key that is never
  stored, so nothing new is written in the clear and nothing fails on the way out.
- **Cost.** Keys are cached in the process like :class:`streams.privacy.Privacy` does (one
  store call per run to find its key, one per key id to open, 30 s at most; an erased key
  stays erased): no round trip per payload.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

ENCODING = b"binary/omnihub-sealed"
KEY_ID = "omnihub-key"
NONCE_BYTES = 12


class RunKeys(Protocol):
    """Where the codec reads data keys (Postgres: :class:`projections.keyring.PgKeyStore`)."""

    async def run_key(self, run_id: str) -> tuple[str, bytes | None] | None:
        """The (key id, key) bound to ``run_id``, the key None once erased; None when the
        run is bound to no key."""
        ...

    async def keys(self, key_ids: Sequence[str]) -> Mapping[str, bytes | None]:
        """Each key by id; None when erased or unknown."""
        ...

    async def close(self) -> None:
        """Release the store's connections."""
        ...


class PayloadErased(Exception):
    """A payload sealed with a key that was erased (or is unknown): it cannot be read."""

    def __init__(self, key_id: str) -> None:
        super().__init__(f"payload sealed with data key {key_id}, which was erased")
        self.key_id = key_id


_UNBOUND = ("", None)  # a run bound to no key: its payloads stay in the clear


class KeyCache:
    """The keys one process has read, shared by every context's codec."""

    def __init__(self, store: RunKeys, ttl_s: float = 30.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._runs: dict[str, tuple[str, AESGCM | None, float]] = {}
        self._ciphers: dict[str, tuple[AESGCM | None, float]] = {}
        self.store_calls = 0

    async def for_run(self, run_id: str) -> tuple[str, AESGCM | None]:
        """The run's (key id, cipher): ("", None) unbound, (id, None) erased."""
        now = time.monotonic()
        found = self._runs.get(run_id)
        if found is not None and now - found[2] < self.ttl_s:
            return found[0], found[1]
        self.store_calls += 1
        bound = await self.store.run_key(run_id)
        key_id, key = bound if bound is not None else _UNBOUND
        cipher = AESGCM(key) if key is not None else None
        # An erased key stays erased: never asked again.
        read_at = float("inf") if key_id and cipher is None else now
        if len(self._runs) > 10_000:  # bounded: runs end, and a miss costs one query
            self._runs.clear()
        self._runs[run_id] = (key_id, cipher, read_at)
        if cipher is not None:
            self._ciphers[key_id] = (cipher, now)
        return key_id, cipher

    async def ciphers(self, key_ids: Iterable[str]) -> dict[str, AESGCM | None]:
        now = time.monotonic()
        out: dict[str, AESGCM | None] = {}
        missing = []
        for key_id in set(key_ids):
            cached = self._ciphers.get(key_id)
            if cached is None or now - cached[1] >= self.ttl_s:
                missing.append(key_id)
            else:
                out[key_id] = cached[0]
        if missing:
            self.store_calls += 1
            loaded = await self.store.keys(sorted(missing))
            if len(self._ciphers) > 10_000:
                self._ciphers.clear()
            for key_id in missing:
                key = loaded.get(key_id)
                cipher = AESGCM(key) if key is not None else None
                self._ciphers[key_id] = (cipher, now if cipher is not None else float("inf"))
                out[key_id] = cipher
        return out

    def forget(self, key_id: str) -> None:
        """A key was erased: never use it again in this process."""
        self._ciphers[key_id] = (None, float("inf"))
        for run_id in [r for r, (k, _, _) in self._runs.items() if k == key_id]:
            self._runs[run_id] = (key_id, None, float("inf"))


class SealingCodec(PayloadCodec, WithSerializationContext):
    """Seals payloads with their run's data key; opens them by the key id they name."""

    def __init__(self, cache: KeyCache, run_id: str | None = None) -> None:
        self.cache = cache
        self.run_id = run_id

    def with_context(self, context: SerializationContext) -> Self:
        run_id = None
        if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
            run_id = context.workflow_id  # the workflow id is the run id
        return type(self)(self.cache, run_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if self.run_id is None:
            return list(payloads)
        key_id, cipher = await self.cache.for_run(self.run_id)
        if not key_id:
            return list(payloads)
        # Erased: seal with a key nobody keeps, rather than write the clear or fail.
        sealer = cipher or AESGCM(AESGCM.generate_key(256))
        return [seal(p, key_id, sealer) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        wanted = [key_id_of(p) for p in payloads if p.metadata.get("encoding") == ENCODING]
        if not wanted:
            return list(payloads)
        ciphers = await self.cache.ciphers(wanted)
        return [open_payload(p, ciphers) for p in payloads]

    async def close(self) -> None:
        await self.cache.store.close()


def key_id_of(payload: Payload) -> str:
    return payload.metadata.get(KEY_ID, b"").decode()


def seal(payload: Payload, key_id: str, cipher: AESGCM) -> Payload:
    """``payload`` sealed whole (its metadata too: the encoding says what it holds)."""
    nonce = os.urandom(NONCE_BYTES)
    body = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
    return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + body)


def open_payload(payload: Payload, ciphers: Mapping[str, AESGCM | None]) -> Payload:
    if payload.metadata.get("encoding") != ENCODING:
        return payload
    key_id = key_id_of(payload)
    cipher = ciphers.get(key_id)
    if cipher is None:
        raise PayloadErased(key_id)
    raw = payload.data
    try:
        plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode())
    except InvalidTag as exc:  # sealed for an erased run (a throwaway key), or tampered
        raise PayloadErased(key_id) from exc
    return Payload.FromString(plain)


def sealing_converter(store: RunKeys, ttl_s: float = 30.0) -> DataConverter:
    """The data converter of every OmniHub Temporal client and worker: the default JSON
    payloads, sealed; failures' messages and stack traces moved into a payload (an
    activity's error can quote a goal), so they are sealed too."""
    return DataConverter(
        payload_codec=SealingCodec(KeyCache(store, ttl_s)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
