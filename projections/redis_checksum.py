"""A content checksum of one generation of the Redis views, to compare a rebuild with
the live views.

Keys are read in sorted order, a chunk at a time, each chunk in two pipelined round
trips (every key's type and its run's view, then every kept key's content). One round
trip per key, as before, made the checksum most of a Redis rebuild's time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from projections.redis_model import Keyspace, Retention

CHUNK = 500  # keys per pair of round trips


async def views_checksum(
    redis: Redis, ks: Keyspace, retention: Retention, now: datetime
) -> tuple[int, str]:
    """Key count and a SHA-256 of every view's content in ``ks``, leaving out positions
    and what is past due at ``now`` (live may have dropped it, a rebuild not yet)."""
    skip = {ks.positions, ks.position_times}
    found = [_text(k) async for k in redis.scan_iter(ks.pattern, 1000)]
    keys = sorted(k for k in found if k not in skip)
    strip = len(ks.pattern) - 1
    digest = hashlib.sha256()
    counted = 0
    for i in range(0, len(keys), CHUNK):
        chunk = [(key, key[strip:]) for key in keys[i : i + CHUNK]]
        kept = await _kept(redis, ks, retention, now, chunk)
        async with redis.pipeline(transaction=False) as pipe:
            for key, _, kind in kept:
                _read(pipe, key, kind)
            contents = await pipe.execute()
        for (_, name, kind), content in zip(kept, contents, strict=True):
            counted += 1
            digest.update(f"{name}={json.dumps(_value(kind, content))}\n".encode())
    return counted, digest.hexdigest()


async def _kept(
    redis: Redis,
    ks: Keyspace,
    retention: Retention,
    now: datetime,
    chunk: Sequence[tuple[str, str]],
) -> list[tuple[str, str, str]]:
    """``(key, name, type)`` of the keys in ``chunk`` that are not past due."""
    runs = [_run_of(name) for _, name in chunk]
    async with redis.pipeline(transaction=False) as pipe:
        for (key, _), run_id in zip(chunk, runs, strict=True):
            pipe.type(key)
            if run_id is not None:
                pipe.hget(ks.run(run_id), "view")
        out = iter(await pipe.execute())
    kept = []
    for (key, name), run_id in zip(chunk, runs, strict=True):
        kind = _text(next(out))
        view = next(out) if run_id is not None else None
        if not retention.past_due(name, view, now):
            kept.append((key, name, kind))
    return kept


def _run_of(name: str) -> str | None:
    """The run whose view decides whether key ``name`` is past due, if any."""
    if name.startswith("seen:run:"):
        return name.removeprefix("seen:run:")
    if name.startswith("run:"):
        return name.removeprefix("run:")
    return None


def _read(pipe: Pipeline, key: str, kind: str) -> None:
    if kind == "hash":
        pipe.hgetall(key)
    elif kind == "zset":
        pipe.zrange(key, 0, -1, withscores=True)
    elif kind == "set":
        pipe.smembers(key)
    else:
        pipe.get(key)


def _value(kind: str, content: Any) -> object:
    if kind == "hash":
        return sorted((_text(k), _text(v)) for k, v in content.items())
    if kind == "zset":
        return [(_text(m), s) for m, s in content]
    if kind == "set":
        return sorted(_text(m) for m in content)
    return _text(content or b"")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
