"""The Redis live views, written exactly once per (topic, partition, offset).

Each batch is one Lua script: it checks that the partition's stored position is the
one the batch was folded against (compare-and-set), applies every command and moves
the position, atomically. A concurrent or repeated writer finds the position moved
and refolds from the new state; a duplicate event is caught by its run's (or audit
day's) set of applied ids. Finished runs expire (see :mod:`projections.redis_model`).
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from domain.events import Event
from domain.run_view import RunView
from omnihub.settings import Settings
from projections.fold import ApplyResult, FoldShare, Loaded, fold_batch
from projections.redis_checksum import views_checksum
from projections.redis_model import (
    DEFAULT_RETENTION,
    Keyspace,
    Retention,
    live_counters,
    redis_commands,
)
from streams.consumer import Record

INITIAL_GEN = "g0"

_APPLY = """
local pointer, gen, paused = ARGV[1], ARGV[2], ARGV[3]
local poskey, timekey, field = ARGV[4], ARGV[5], ARGV[6]
if ARGV[11] == '1' then
  if redis.call('EXISTS', paused) == 1 then return 'paused' end
  if redis.call('GET', pointer) ~= gen then return 'moved' end
end
local cur = redis.call('HGET', poskey, field)
if (cur or '0') ~= ARGV[7] then return 'conflict' end
for _, cmd in ipairs(cjson.decode(ARGV[10])) do
  local r = redis.call(unpack(cmd))
  -- an absent counter is zero: keeps the keyspace independent of batch boundaries
  if cmd[1] == 'HINCRBY' and r == 0 then redis.call('HDEL', cmd[2], cmd[3]) end
end
redis.call('HSET', poskey, field, ARGV[8])
if ARGV[9] ~= '' then redis.call('HSET', timekey, field, ARGV[9]) end
return 'ok'
"""


class RedisProjection:
    """The live views; ``gen=None`` follows the live generation, else writes that one."""

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        gen: str | None = None,
        *,
        retention: Retention = DEFAULT_RETENTION,
        share: FoldShare | None = None,
    ) -> None:
        self._redis = redis
        self._share = share  # the Postgres sink's fold of the same batch, when at par
        self.prefix = prefix
        self._fixed_gen = gen
        self._retention = retention
        self._script = redis.register_script(_APPLY)

    @classmethod
    def of(
        cls,
        redis: Redis,
        settings: Settings,
        gen: str | None = None,
        share: FoldShare | None = None,
    ) -> RedisProjection:
        """The projection ``settings`` configure (prefix and retention)."""
        return cls(
            redis,
            settings.projections_redis_prefix,
            gen,
            retention=Retention(timedelta(seconds=settings.live_retention_s)),
            share=share,
        )

    async def keyspace(self) -> Keyspace:
        """The generation this projection writes (the live one unless fixed)."""
        if self._fixed_gen is not None:
            return Keyspace(self.prefix, self._fixed_gen)
        pointer = Keyspace(self.prefix, "").pointer
        await self._redis.set(pointer, INITIAL_GEN, nx=True)
        gen = await self._redis.get(pointer)
        return Keyspace(self.prefix, gen.decode() if isinstance(gen, bytes) else str(gen))

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> ApplyResult:
        """Fold ``records`` (one partition, ascending offsets) into the views once."""
        field = f"{topic}:{partition}"
        while True:
            ks = await self.keyspace()
            raw = await self._redis.hget(ks.positions, field)
            current = int(raw or 0)
            fresh = [r for r in records if r.offset >= current]
            if not fresh:
                return ApplyResult(0, len(records), 0)
            events = [r.event for r in fresh if r.event is not None]
            changes = self._share.take(topic, partition, records, current) if self._share else None
            if changes is None:
                changes = fold_batch(await self._load(ks, events), events)
            last = max((e.envelope.occurred_at for e in events), default=None)
            outcome = await self._script(
                args=[
                    ks.pointer,
                    ks.gen,
                    ks.paused,
                    ks.positions,
                    ks.position_times,
                    field,
                    str(current),
                    str(fresh[-1].offset + 1),
                    last.isoformat() if last else "",
                    json.dumps(
                        redis_commands(ks, changes, events, self._retention, datetime.now(UTC))
                    ),
                    "0" if self._fixed_gen else "1",
                ]
            )
            outcome = outcome.decode() if isinstance(outcome, bytes) else outcome
            if outcome == "ok":
                return ApplyResult(len(fresh), len(records) - len(fresh), changes.duplicates)
            if outcome == "paused":
                await asyncio.sleep(0.05)  # a rebuild is swapping generations: brief

    async def _load(self, ks: Keyspace, evs: Sequence[Event]) -> Loaded:
        run_ids = sorted({e.envelope.run_id for e in evs})
        by_set: dict[str, list[str]] = defaultdict(list)
        for e in evs:
            by_set[ks.seen(e)].append(e.envelope.event_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hget(ks.run(run_id), "view")
            for key, ids in by_set.items():
                pipe.smismember(key, ids)
            out = await pipe.execute()
        views = {r: RunView.from_json(v) for r, v in zip(run_ids, out, strict=False) if v}
        hits = out[len(run_ids) :]
        seen = {
            i
            for ids, found in zip(by_set.values(), hits, strict=True)
            for i, hit in zip(ids, found, strict=True)
            if hit
        }
        return Loaded(runs=views, applied_ids=seen)

    async def live(self, tenant_id: str, limit: int = 50) -> dict[str, Any]:
        """A tenant's live counters and newest runs (finished ones until they expire)."""
        ks = await self.keyspace()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(ks.counters(tenant_id))
            pipe.zrevrange(ks.recent(tenant_id), 0, limit - 1)
            raw, run_ids = await pipe.execute()
        async with self._redis.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.hget(ks.run(_s(run_id)), "view")
            views = await pipe.execute() if run_ids else []
        runs = [RunView.from_json(v) for v in views if v]
        return {
            "counters": live_counters({_s(k): int(v) for k, v in raw.items()}),
            "recent": [r for r in runs if r.tenant_id == tenant_id],
        }

    async def positions(self) -> dict[tuple[str, int], tuple[int, str | None]]:
        """``(topic, partition) -> (next_offset, last event time)`` of this generation."""
        ks = await self.keyspace()
        offsets = await self._redis.hgetall(ks.positions)
        times = await self._redis.hgetall(ks.position_times)
        out = {}
        for field, value in offsets.items():
            topic, _, part = _s(field).rpartition(":")
            when = times.get(field)
            out[(topic, int(part))] = (int(value), _s(when) if when else None)
        return out

    async def checksum(self, now: datetime | None = None) -> tuple[int, str]:
        """Key count and a SHA-256 of every view's content, leaving out positions and
        what is past due at ``now`` (live may have dropped it, a rebuild not yet)."""
        ks = await self.keyspace()
        return await views_checksum(self._redis, ks, self._retention, now or datetime.now(UTC))


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
