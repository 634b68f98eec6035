"""The Redis live views as pure data: key names and the commands a folded batch implies.

Views (all under ``<prefix>:<generation>:``): ``run:<id>`` (hash: status, tenant,
the full run view as JSON), ``tenant:<t>:counters`` (hash of live counters),
``recent`` and ``tenant:<t>:recent`` (sorted sets of run ids by creation time, capped),
``tenants`` (set). Positions live in ``positions``. A generation is a whole keyspace:
a rebuild fills a new one and moves ``current``.

Memory stays bounded. The ids that dedupe a run's events live in ``seen:run:<id>``;
a finished run's view and that set expire ``retention`` after the run ended. Audit
records (one endless stream per tenant) are deduped in ``seen:audit:<day>`` sets that
expire ``retention`` after their UTC day. So a duplicate is caught while its run is
in the live view; ``/runs`` in Postgres keeps everything. Due times come from event
times, and no key is set to expire sooner than ``grace`` from now: a rebuild replaying
old history keeps each finished run long enough to catch the duplicates that follow it
in the log, and its checksum leaves out what is past due (:meth:`Retention.past_due`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from domain.events import AuditRecorded, Event
from domain.kpis import COUNTERS
from domain.run_view import RunView
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

    def run_seen(self, run_id: str) -> str:
        """Ids of the events folded into ``run:<id>``."""
        return self._k("seen", "run", run_id)

    def audit_seen(self, day: str) -> str:
        """Ids of the audit records of one UTC day (``YYYY-MM-DD``)."""
        return self._k("seen", "audit", day)

    def seen(self, event: Event) -> str:
        """The set that dedupes ``event``."""
        if isinstance(event, AuditRecorded):
            return self.audit_seen(_day(event.envelope.occurred_at))
        return self.run_seen(event.envelope.run_id)

    @property
    def positions(self) -> str:
        return self._k("positions")

    @property
    def position_times(self) -> str:
        return self._k("position_times")


@dataclass(frozen=True)
class Retention:
    """How long finished runs and audit dedupe sets stay (see the module doc)."""

    keep: timedelta
    grace: timedelta = timedelta(hours=1)

    def run_due(self, run: RunView) -> datetime | None:
        """When a run's keys may go: ``keep`` after it ended; never while it runs."""
        return (run.ended_at or run.updated_at) + self.keep if run.terminal else None

    def audit_due(self, day: str) -> datetime:
        return datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=1) + self.keep

    def expire_at(self, due: datetime, now: datetime) -> int:
        """The EXPIREAT time for ``due``: not sooner than ``grace`` from ``now``."""
        return int(max(due, now + self.grace).timestamp())

    def past_due(self, key: str, view_json: str | bytes | None, now: datetime) -> bool:
        """Whether ``key`` (named relative to its generation) is past due at ``now``.

        A run's ``view_json`` decides for both its keys; a run without one is gone.
        """
        if key.startswith(("run:", "seen:run:")):
            if view_json is None:
                return True
            due = self.run_due(RunView.from_json(view_json))
            return due is not None and due <= now
        if key.startswith("seen:audit:"):
            return self.audit_due(key.removeprefix("seen:audit:")) <= now
        return False


DEFAULT_RETENTION = Retention(timedelta(days=1))


def redis_commands(
    ks: Keyspace,
    changes: Changes,
    events: Sequence[Event],
    retention: Retention,
    now: datetime,
) -> list[Command]:
    """The writes that apply ``changes`` (folded from ``events``) to generation ``ks``."""
    cmds: list[Command] = []
    expiries: list[Command] = []
    recent_keys: set[str] = set()
    for run in changes.runs.values():
        cmds.append(
            [
                "HSET",
                ks.run(run.run_id),
                "status",
                run.status,
                "tenant_id",
                run.tenant_id,
                "updated_at",
                run.updated_at.isoformat(),
                "view",
                run.to_json(),
            ]
        )
        score = int(run.created_at.timestamp() * 1000)
        for key in (ks.recent(), ks.recent(run.tenant_id)):
            cmds.append(["ZADD", key, score, run.run_id])
            recent_keys.add(key)
        cmds.append(["SADD", ks.tenants, run.tenant_id])
        if (due := retention.run_due(run)) is not None:
            at = retention.expire_at(due, now)
            expiries += [
                ["EXPIREAT", key, at] for key in (ks.run(run.run_id), ks.run_seen(run.run_id))
            ]
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
    applied = set(changes.applied_ids)
    by_set: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if event.envelope.event_id in applied:
            by_set[ks.seen(event)].append(event.envelope.event_id)
    for key, ids in by_set.items():
        for i in range(0, len(ids), 1000):
            cmds.append(["SADD", key, *ids[i : i + 1000]])
    days = {_day(e.envelope.occurred_at) for e in events if isinstance(e, AuditRecorded)}
    for day in sorted(days):
        at = retention.expire_at(retention.audit_due(day), now)
        expiries.append(["EXPIREAT", ks.audit_seen(day), at])
    return cmds + expiries  # after the writes: EXPIREAT on a missing key does nothing


def live_counters(raw: dict[str, int]) -> dict[str, int]:
    """The stored counters plus ``active`` (runs received and not yet finished)."""
    out = {name: raw.get(name, 0) for name in (*COUNTERS, "pending_approvals", "audit_events")}
    out["active"] = out["goals"] - out["completions"] - out["failures"] - out["cancellations"]
    return out


def _day(at: datetime) -> str:
    return at.astimezone(UTC).date().isoformat()
