"""The Redis live views as pure data: key names and the commands a folded batch implies.

Views (all under ``<prefix>:<generation>:``): ``run:<id>`` (hash: status, tenant,
the full run view as JSON), ``tenant:<t>:counters`` (hash of live counters),
``recent`` and ``tenant:<t>:recent`` (sorted sets of run ids by creation time, capped),
``tenants`` (set), ``seen`` (applied event ids). Positions live in ``positions``.
A generation is a whole keyspace: a rebuild fills a new one and moves ``current``.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.kpis import COUNTERS
from projections.fold import Changes

RECENT_CAP = 200
Command = list[str | int]


@dataclass(frozen=True)
class Keyspace:
    """Key names of one generation of the Redis views."""

    prefix: str
    gen: str

    def _k(self, *parts: str) -> str:
        return ":".join((self.prefix, self.gen, *parts))

    @property
    def pointer(self) -> str:
        """Holds the live generation's name."""
        return f"{self.prefix}:current"

    @property
    def paused(self) -> str:
        """While set, live writers wait (a rebuild is swapping generations)."""
        return f"{self.prefix}:paused"

    @property
    def pattern(self) -> str:
        return self._k("*")

    def run(self, run_id: str) -> str:
        return self._k("run", run_id)

    def counters(self, tenant_id: str) -> str:
        return self._k("tenant", tenant_id, "counters")

    def recent(self, tenant_id: str | None = None) -> str:
        return self._k("tenant", tenant_id, "recent") if tenant_id else self._k("recent")

    @property
    def tenants(self) -> str:
        return self._k("tenants")

    @property
    def seen(self) -> str:
        return self._k("seen")

    @property
    def positions(self) -> str:
        return self._k("positions")

    @property
    def position_times(self) -> str:
        return self._k("position_times")


def redis_commands(ks: Keyspace, changes: Changes) -> list[Command]:
    """The writes that apply ``changes`` to generation ``ks``."""
    cmds: list[Command] = []
    recent_keys: set[str] = set()
    for run in changes.runs.values():
        cmds.append(["HSET", ks.run(run.run_id), "status", run.status,
                     "tenant_id", run.tenant_id, "updated_at", run.updated_at.isoformat(),
                     "view", run.to_json()])
        score = int(run.created_at.timestamp() * 1000)
        for key in (ks.recent(), ks.recent(run.tenant_id)):
            cmds.append(["ZADD", key, score, run.run_id])
            recent_keys.add(key)
        cmds.append(["SADD", ks.tenants, run.tenant_id])
        before = changes.runs_before.get(run.run_id)
        pending = run.pending_approvals - (before.pending_approvals if before else 0)
        if pending:
            cmds.append(["HINCRBY", ks.counters(run.tenant_id), "pending_approvals", pending])
    for delta in changes.kpis.values():
        for name in COUNTERS:
            if value := getattr(delta, name):
                cmds.append(["HINCRBY", ks.counters(delta.tenant_id), name, value])
    for entry in changes.audit:
        cmds.append(["HINCRBY", ks.counters(entry.tenant_id), "audit_events", 1])
    for key in sorted(recent_keys):
        cmds.append(["ZREMRANGEBYRANK", key, 0, -(RECENT_CAP + 1)])
    for i in range(0, len(changes.applied_ids), 1000):
        cmds.append(["SADD", ks.seen, *changes.applied_ids[i : i + 1000]])
    return cmds


def live_counters(raw: dict[str, int]) -> dict[str, int]:
    """The stored counters plus ``active`` (runs received and not yet finished)."""
    out = {name: raw.get(name, 0) for name in (*COUNTERS, "pending_approvals", "audit_events")}
    out["active"] = out["goals"] - out["completions"] - out["failures"] - out["cancellations"]
    return out
