"""Audit chains: which chain a fact goes to, how long a tier keeps it, and where the
retention job cuts a chain. Pure.

Each tenant has its chain (``tenant_id`` = the tenant, Kafka key ``audit-<tenant>``);
platform-wide actions (kill switches) are chained a second time in the **platform
chain** (``tenant_id`` = :data:`PLATFORM`, key ``audit-*``), which every tenant's
auditor may read. No tenant name can start with ``*`` (``domain.scopes.TENANT_PATTERN``),
so the platform chain never collides with a tenant's.

Retention cuts a chain at a **checkpoint**: the job picks the longest prefix of records
older than the tier allows and appends ``audit_checkpoint_taken`` (the last expiring
sequence and its hash); the chainer links it into the same chain as a ``retention`` /
``checkpoint`` record, so the checkpoint is itself protected by the chain, and the
projector then deletes the prefix. What remains verifies from the checkpoint: the first
kept record's ``prev_hash`` must equal the checkpoint's ``through_hash``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain import ids
from domain.events import AuditCheckpointTaken, Event, KillSwitchToggled
from domain.tiers import TIERS

PLATFORM = "*"
"""The platform chain's ``tenant_id``."""

DEFAULT_RETENTION_DAYS = 90
"""For a tenant with no subscription or membership (on the deployment's default tier):
what the original platform kept. Deleting audit records cannot be undone, so a tenant
keeps less only when a tier was chosen for it."""

CHECKPOINT = ("retention", "checkpoint")
"""(category, action) of the chained checkpoint record."""


def chain_stream(chain: str) -> str:
    """The Kafka key (and ``run_id``) of ``chain``'s records."""
    return f"audit-{chain}"


def chains_for(event: Event) -> list[str]:
    """The chains a source fact goes to: its tenant's, and the platform's if it affects
    every tenant. A checkpoint belongs to the chain it cuts (its envelope's tenant)."""
    tenant = event.envelope.tenant_id
    if isinstance(event, KillSwitchToggled) and tenant != PLATFORM:
        return [tenant, PLATFORM]
    return [tenant]


def retention_for(tier: str | None) -> tuple[str, int]:
    """(tier name, days kept; 0 is forever) for a tenant on ``tier`` (None: it holds no
    subscription or membership)."""
    if tier is None or tier not in TIERS:
        return ("default", DEFAULT_RETENTION_DAYS)
    return (tier, TIERS[tier].audit_retention_days)  # type: ignore[index]


def longest_retention_days() -> int:
    """The longest any tier keeps audit records (0: some tier keeps them forever): what
    the audit topic itself must keep, since Kafka retention is per topic."""
    days = [t.audit_retention_days for t in TIERS.values()] + [DEFAULT_RETENTION_DAYS]
    return 0 if 0 in days else max(days)


@dataclass(frozen=True)
class Cut:
    """Where a chain is cut: records up to ``through_sequence`` expire."""

    through_sequence: int
    through_hash: str
    cut_before: datetime


def decide_cut(kept: Sequence[tuple[int, str, datetime]], now: datetime, days: int) -> Cut | None:
    """The cut for a chain whose kept records are ``kept`` ((sequence, hash,
    occurred_at), in sequence order), or None when nothing is old enough.

    Only a prefix can expire: a record's time is its source's, so an old record may
    follow a young one, and it then stays until everything before it expires.
    """
    if days <= 0:
        return None
    cut_before = now - timedelta(days=days)
    last: tuple[int, str] | None = None
    for sequence, hash_, occurred_at in kept:
        if occurred_at >= cut_before:
            break
        last = (sequence, hash_)
    return None if last is None else Cut(last[0], last[1], cut_before)


def checkpoint_event(
    chain: str, cut: Cut, tier: str, days: int, *, actor: str, correlation_id: str
) -> AuditCheckpointTaken:
    """The source fact of a checkpoint; its id is derived from the cut (re-runs dedupe)."""
    return AuditCheckpointTaken(
        envelope=ids.envelope(
            AuditCheckpointTaken,
            run_id=chain_stream(chain),
            tenant_id=chain,
            actor=actor,
            correlation_id=correlation_id,
            discriminator=(cut.through_sequence, cut.through_hash),
        ),
        through_sequence=cut.through_sequence,
        through_hash=cut.through_hash,
        cut_before=cut.cut_before,
        tier=tier,
        retention_days=days,
    )


def checkpoint_details(event: AuditCheckpointTaken) -> dict[str, str]:
    """The chained checkpoint record's details."""
    return {
        "through_sequence": str(event.through_sequence),
        "through_hash": event.through_hash,
        "cut_before": event.cut_before.isoformat(),
        "tier": event.tier,
        "retention_days": str(event.retention_days),
    }


def checkpoint_through(
    category: str, action: str, details: Mapping[str, str]
) -> tuple[int, str] | None:
    """(through_sequence, through_hash) if this record is a chained checkpoint."""
    if (category, action) != CHECKPOINT:
        return None
    try:
        return int(details["through_sequence"]), details["through_hash"]
    except (KeyError, ValueError):
        return None
