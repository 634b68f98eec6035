"""Sealing personal fields at append and opening them where consumers decode.

The fields come from the schemas (``"omnihub.personal": true``, see
:mod:`domain.privacy`); the data keys from a :class:`KeyStore` (Postgres, in
:mod:`projections.keyring`). Keys are cached in the process, so sealing and opening cost
no round trip per event: a store call happens once per run (which key seals it) and once
per key id (opening), and a key found erased stays erased.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Protocol

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.events import Event, GoalReceived
from domain.privacy import (
    PREFIX,
    Path,
    key_id_of,
    map_paths,
    open_all,
    open_text,
    personal_paths,
    seal_text,
)
from streams.schema_registry import SchemaRegistry

DATA_SUBJECT = "data_subject"  # the goal context key that names a data subject
SEALED_BYTES = PREFIX.encode()  # Avro writes strings as UTF-8: a cheap test on raw bytes


class KeyStore(Protocol):
    """Where data keys live (wrapped); the port :class:`Privacy` needs."""

    async def key_for_run(
        self, tenant_id: str, run_id: str, subject: str | None, new_run: bool = False
    ) -> tuple[str, bytes]:
        """The (key id, key) sealing ``run_id``: the one it was bound to (unless
        ``new_run``: its goal), else the data subject's (``subject``) or the tenant's,
        created if needed, and bound."""
        ...

    async def keys(self, key_ids: Sequence[str]) -> Mapping[str, bytes | None]:
        """Each key by id; None when erased or unknown."""
        ...

    async def close(self) -> None:
        """Release the store's connections."""
        ...


class Privacy:
    """Seals and opens events; the one place that knows which fields are personal."""

    def __init__(self, registry: SchemaRegistry, store: KeyStore, ttl_s: float = 30.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._paths: dict[str, tuple[Path, ...]] = {}
        for event_type in registry.event_types:
            self._paths[event_type] = personal_paths(registry.latest(event_type).raw)
        self._runs: dict[str, tuple[str, AESGCM, float]] = {}  # run -> key sealing it
        self._ciphers: dict[str, tuple[AESGCM | None, float]] = {}  # key id -> key, read at

    def paths(self, event_type: str) -> tuple[Path, ...]:
        return self._paths.get(event_type, ())

    async def seal(self, events: Sequence[Event]) -> list[Event]:
        """``events`` with every personal string sealed with its run's data key."""
        out = []
        for event in events:
            paths = self.paths(event.EVENT_TYPE)
            if not paths:
                out.append(event)
                continue
            key_id, cipher = await self._run_key(event)
            out.append(map_paths(event, paths, partial(_seal_nonempty, key_id, cipher)))
        return out

    async def open(self, events: Iterable[Event]) -> list[Event]:
        """``events`` with every sealed string opened (or read as erased)."""
        batch = list(events)
        missing: set[str] = set()
        out = [self._open_event(e, missing) for e in batch]
        if missing:  # keys not cached (or stale): load them once, then open again
            await self._load(missing)
            missing.clear()
            out = [self._open_event(e, missing) for e in batch]
        return out

    async def close(self) -> None:
        await self._store.close()

    async def open_one(self, event: Event) -> Event:
        return (await self.open([event]))[0]

    def forget(self, key_id: str) -> None:
        """A key was erased: never use it again in this process."""
        self._ciphers[key_id] = (None, float("inf"))
        for run_id in [r for r, (k, _, _) in self._runs.items() if k == key_id]:
            del self._runs[run_id]

    def _open_event(self, event: Event, missing: set[str]) -> Event:
        stale = time.monotonic() - self._ttl_s

        def opener(text: str) -> str:
            if not text.startswith(PREFIX):
                return text
            key_id = key_id_of(text)
            cached = self._ciphers.get(key_id)
            if cached is None or cached[1] < stale:
                missing.add(key_id)
                return text
            return open_text(text, cached[0])

        # Personal fields by the schema; an event type with none may still carry a copy
        # of a sealed value (an audit record's details): look everywhere in it.
        paths = self.paths(event.EVENT_TYPE)
        opened: Event = map_paths(event, paths, opener) if paths else open_all(event, opener)
        return opened

    async def _run_key(self, event: Event) -> tuple[str, AESGCM]:
        env = event.envelope
        now = time.monotonic()
        found = self._runs.get(env.run_id)
        if found is not None and now - found[2] < self._ttl_s:
            return found[0], found[1]
        goal = isinstance(event, GoalReceived)
        subject = event.context.get(DATA_SUBJECT) if isinstance(event, GoalReceived) else None
        key_id, key = await self._store.key_for_run(env.tenant_id, env.run_id, subject, goal)
        if len(self._runs) > 10_000:  # bounded: runs end, and a miss costs one query
            self._runs.clear()
        self._runs[env.run_id] = (key_id, AESGCM(key), now)
        return key_id, self._runs[env.run_id][1]

    async def _load(self, missing: set[str]) -> None:
        now = time.monotonic()
        loaded = await self._store.keys(sorted(missing))
        for key_id in missing:
            key = loaded.get(key_id)
            # An erased key stays erased: no need to ask again.
            self._ciphers[key_id] = (AESGCM(key), now) if key is not None else (None, float("inf"))


def _seal_nonempty(key_id: str, key: AESGCM, text: str) -> str:
    # An empty value says nothing about anyone; left as is, it reads the same after erasure.
    return seal_text(key_id, key, text) if text else text
