"""Sealing personal fields at append and opening them where consumers decode.

The fields come from the schemas (``"omnihub.personal": true``, see
:mod:`domain.privacy`); the data keys from a :class:`KeyStore` (Postgres, in
:mod:`projections.keyring`). Keys are cached in the process, so sealing and opening cost
no round trip per event: a store call happens once per run (which key seals it) and once
per key id (opening), and a key found erased stays erased.

An event of the control plane (any topic but the runs': a key's or device's name, a
revocation's, kill switch's or subscription's reason, a notification channel) has no
run and no data subject: it is always sealed with its tenant's own key, never with a
key its stream (``control-<tenant>``, ``notify-<tenant>``...) was bound to before, and
the stream is bound to it, so a tenant's erasure reaches it and names the stream. A
kill switch is platform-wide, but a principal of a tenant toggles it: its reason is
that tenant's words, sealed with that tenant's key (its copy in the platform audit
chain is the same ciphertext), though its stream (``killswitch-<feature>``) is shared
by every tenant. An event with no tenant (``""``) is sealed with the platform's own
key, tenant :data:`PLATFORM` (``omnihub privacy erase --tenant '*'`` erases it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Protocol, TypeVar

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
from streams.topics import EVENT_TOPICS, Topic

DATA_SUBJECT = "data_subject"  # the goal context key that names a data subject
SEALED_BYTES = PREFIX.encode()  # Avro writes strings as UTF-8: a cheap test on raw bytes
PLATFORM = "*"  # whose key seals an event of no tenant (the audit's platform chain's name)
T = TypeVar("T")


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
        # (tenant, control stream) -> the tenant's key, which sealed it
        self._streams: dict[tuple[str, str], tuple[str, AESGCM, float]] = {}
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
            if EVENT_TOPICS.get(event.EVENT_TYPE, Topic.RUNS) is Topic.RUNS:
                key_id, cipher = await self._run_key(event)
            else:
                key_id, cipher = await self._tenant_key(event)
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

    async def open_texts(self, texts: Sequence[str]) -> list[str]:
        """Strings a read model keeps sealed, as the log holds them (the control plane's
        names and reasons), opened or read as erased; any other string as it is."""
        missing: set[str] = set()
        out = [self._opener(missing)(t) for t in texts]
        if missing:
            await self._load(missing)
            missing.clear()
            out = [self._opener(missing)(t) for t in texts]
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
        for stream in [s for s, (k, _, _) in self._streams.items() if k == key_id]:
            del self._streams[stream]

    def _opener(self, missing: set[str]) -> Callable[[str], str]:
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

        return opener

    def _open_event(self, event: Event, missing: set[str]) -> Event:
        opener = self._opener(missing)
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

    async def _tenant_key(self, event: Event) -> tuple[str, AESGCM]:
        env = event.envelope
        stream = (env.tenant_id or PLATFORM, env.run_id)
        now = time.monotonic()
        found = self._streams.get(stream)
        if found is not None and now - found[2] < self._ttl_s:
            return found[0], found[1]
        # As for a new run: the tenant's live key (no subject), and the stream bound to it.
        key_id, key = await self._store.key_for_run(*stream, None, True)
        if len(self._streams) > 10_000:
            self._streams.clear()
        self._streams[stream] = (key_id, AESGCM(key), now)
        return key_id, self._streams[stream][1]

    async def _load(self, missing: set[str]) -> None:
        now = time.monotonic()
        loaded = await self._store.keys(sorted(missing))
        for key_id in missing:
            key = loaded.get(key_id)
            # An erased key stays erased: no need to ask again.
            self._ciphers[key_id] = (AESGCM(key), now) if key is not None else (None, float("inf"))


async def open_fields(privacy: Privacy | None, items: Sequence[T], *names: str) -> list[T]:
    """``items`` (dataclasses from a read model that keeps the control plane's text
    sealed) with their string fields ``names`` opened, or read as erased."""
    if privacy is None or not any(getattr(i, n).startswith(PREFIX) for i in items for n in names):
        return list(items)
    opened = iter(await privacy.open_texts([getattr(i, n) for i in items for n in names]))
    return [replace(i, **{n: next(opened) for n in names}) for i in items]  # type: ignore[type-var]


def _seal_nonempty(key_id: str, key: AESGCM, text: str) -> str:
    # An empty value says nothing about anyone; left as is, it reads the same after erasure.
    return seal_text(key_id, key, text) if text else text
