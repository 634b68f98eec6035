"""The event catalogue: one frozen type per Avro schema in ``schemas/``.

Every event is an immutable fact named in the past tense and carries an
:class:`Envelope`. Field names and order mirror the ``.avsc`` files exactly; a unit
test holds the two together.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Envelope:
    """What every event carries: identity, stream, tenant, time and causality."""

    event_id: str
    event_type: str
    schema_version: int
    run_id: str
    tenant_id: str
    occurred_at: datetime
    causation_id: str | None
    correlation_id: str
    actor: str


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event type; ``EVENT_TYPE`` names its schema file."""

    EVENT_TYPE: ClassVar[str] = ""
    SCHEMA_VERSION: ClassVar[int] = 1
    envelope: Envelope


@dataclass(frozen=True, slots=True)
class GoalReceived(Event):
    EVENT_TYPE: ClassVar[str] = "goal_received"
    goal: str
    context: Mapping[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None


@dataclass(frozen=True, slots=True)
class GoalAssessed(Event):
    EVENT_TYPE: ClassVar[str] = "goal_assessed"
    sanitized_goal: str
    risk_score: float
    reasons: tuple[str, ...]
    allowed: bool


@dataclass(frozen=True, slots=True)
class PlanStep:
    """One node of a plan's DAG (a nested record, not an event)."""

    step_id: str
    tool: str
    arguments_json: str
    depends_on: tuple[str, ...] = ()
    risk: float = 0.0
    compensation: str | None = None
    timeout_s: float = 30.0
    max_attempts: int = 3


@dataclass(frozen=True, slots=True)
class PlanGenerated(Event):
    EVENT_TYPE: ClassVar[str] = "plan_generated"
    plan_id: str
    steps: tuple[PlanStep, ...]
    planner: str
    from_cache: bool = False
    cache_similarity: float | None = None
    template: str | None = None
    template_slots: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepStarted(Event):
    EVENT_TYPE: ClassVar[str] = "step_started"
    step_id: str
    tool: str
    attempt: int


@dataclass(frozen=True, slots=True)
class StepCompleted(Event):
    EVENT_TYPE: ClassVar[str] = "step_completed"
    step_id: str
    tool: str
    attempt: int
    result_json: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class StepFailed(Event):
    EVENT_TYPE: ClassVar[str] = "step_failed"
    step_id: str
    tool: str
    attempt: int
    error_type: str
    error_message: str
    retryable: bool
    final: bool


@dataclass(frozen=True, slots=True)
class StepCompensated(Event):
    """A step was undone. ``result_json`` is the compensation's result plus
    ``"step_outcome"``: ``completed``, or ``unknown`` for a step cancelled or abandoned in
    flight (it may or may not have had its effect) -- older events have no such key."""

    EVENT_TYPE: ClassVar[str] = "step_compensated"
    step_id: str
    tool: str
    compensation_tool: str
    result_json: str


@dataclass(frozen=True, slots=True)
class StepCompensationFailed(Event):
    EVENT_TYPE: ClassVar[str] = "step_compensation_failed"
    step_id: str
    tool: str
    compensation_tool: str
    error_message: str


@dataclass(frozen=True, slots=True)
class ApprovalRequested(Event):
    """A risky step waits; v2 added what is approved, by whom requested, how many grant."""

    EVENT_TYPE: ClassVar[str] = "approval_requested"
    SCHEMA_VERSION: ClassVar[int] = 2
    approval_id: str
    step_id: str
    tool: str
    risk: float
    reasons: tuple[str, ...]
    expires_at: datetime
    goal: str = ""
    requested_by: str = ""
    arguments_json: str = "{}"
    inputs_json: str = "{}"
    compensation: str = ""
    required_approvals: int = 1


@dataclass(frozen=True, slots=True)
class ApprovalGranted(Event):
    EVENT_TYPE: ClassVar[str] = "approval_granted"
    approval_id: str
    step_id: str
    approver: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class ApprovalDenied(Event):
    EVENT_TYPE: ClassVar[str] = "approval_denied"
    approval_id: str
    step_id: str
    approver: str
    reason: str | None = None
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class RunCancelRequested(Event):
    EVENT_TYPE: ClassVar[str] = "run_cancel_requested"
    reason: str
    requested_by: str


@dataclass(frozen=True, slots=True)
class RunCompleted(Event):
    EVENT_TYPE: ClassVar[str] = "run_completed"
    step_count: int
    duration_ms: int
    result_json: str


@dataclass(frozen=True, slots=True)
class RunFailed(Event):
    EVENT_TYPE: ClassVar[str] = "run_failed"
    reason: str
    failed_step_id: str | None
    compensated_step_ids: tuple[str, ...]
    duration_ms: int


@dataclass(frozen=True, slots=True)
class RunCancelled(Event):
    EVENT_TYPE: ClassVar[str] = "run_cancelled"
    reason: str
    cancelled_by: str
    compensated_step_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditRecorded(Event):
    """A chained audit record; v2 added ``sequence``, ``prev_hash`` and ``hash``."""

    EVENT_TYPE: ClassVar[str] = "audit_recorded"
    SCHEMA_VERSION: ClassVar[int] = 2
    category: str
    action: str
    outcome: str
    subject: str
    resource: str = ""
    details: Mapping[str, str] = field(default_factory=dict)
    sequence: int = 0
    prev_hash: str = ""
    hash: str = ""


@dataclass(frozen=True, slots=True)
class AuditFactObserved(Event):
    """A security decision as the API saw it, before the chainer sequences it."""

    EVENT_TYPE: ClassVar[str] = "audit_fact_observed"
    category: str
    action: str
    outcome: str
    subject: str
    resource: str = ""
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditCheckpointTaken(Event):
    """The retention job cut a chain: records up to ``through_sequence`` expire."""

    EVENT_TYPE: ClassVar[str] = "audit_checkpoint_taken"
    through_sequence: int
    through_hash: str
    cut_before: datetime
    tier: str
    retention_days: int


@dataclass(frozen=True, slots=True)
class ApiKeyCreated(Event):
    EVENT_TYPE: ClassVar[str] = "api_key_created"
    key_id: str
    prefix: str
    key_hash: str
    scopes: tuple[str, ...]
    name: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRotated(Event):
    EVENT_TYPE: ClassVar[str] = "api_key_rotated"
    key_id: str
    new_key_id: str
    new_prefix: str
    new_key_hash: str
    scopes: tuple[str, ...]
    old_key_expires_at: datetime
    new_key_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKeyRevoked(Event):
    EVENT_TYPE: ClassVar[str] = "api_key_revoked"
    key_id: str
    prefix: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class KillSwitchToggled(Event):
    """``enabled`` is the feature's state: False means the kill switch is engaged."""

    EVENT_TYPE: ClassVar[str] = "kill_switch_toggled"
    feature: str
    enabled: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PlanCacheInvalidated(Event):
    """The tenant's cached plans (scope ``tenant``) or one template's are no longer served."""

    EVENT_TYPE: ClassVar[str] = "plan_cache_invalidated"
    scope: str  # "tenant" or "template"
    template: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PlanTemplateShared(Event):
    """Tenants (or ``*``, every tenant) that may reuse the tenant's plan for ``template``."""

    EVENT_TYPE: ClassVar[str] = "plan_template_shared"
    template: str
    shared_with: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WalletLinked(Event):
    """A wallet proved, by a signed SIWE message, that it signs for the envelope's tenant."""

    EVENT_TYPE: ClassVar[str] = "wallet_linked"
    address: str  # EIP-55 checksummed
    chain_id: int
    siwe_domain: str
    siwe_nonce: str
    signed_at: datetime  # the message's issued-at


@dataclass(frozen=True, slots=True)
class WalletUnlinked(Event):
    """The tenant no longer answers for this wallet (its memberships stop counting)."""

    EVENT_TYPE: ClassVar[str] = "wallet_unlinked"
    address: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SubscriptionChanged(Event):
    """An operator set the envelope's tenant's subscription tier (free when it ends)."""

    EVENT_TYPE: ClassVar[str] = "subscription_changed"
    tier: str  # free, starter, pro, enterprise (domain/tiers.py)
    reason: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MembershipChanged(Event):
    """A membership token's state after a change on chain, or after a reorg undid one.

    Each event carries the token's whole state (holder, tier, expiry), so the latest one
    per token is the truth; ``retracts`` names the event a reorg took back.
    """

    EVENT_TYPE: ClassVar[str] = "membership_changed"
    chain_id: int
    contract: str
    token_id: str  # uint256 as decimal text
    change: str  # minted, renewed, transferred, revoked, retracted
    holder: str  # EIP-55 address; "" once revoked
    tier: str
    expires_at: datetime
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    retracts: str | None = None


@dataclass(frozen=True, slots=True)
class DeviceRegistered(Event):
    """A tenant trusts a device: requests signed with its Ed25519 key act with ``scopes``."""

    EVENT_TYPE: ClassVar[str] = "device_registered"
    device_id: str
    name: str
    public_key: str  # 32 bytes, base64url without padding
    scopes: tuple[str, ...]
    first_seen_at: datetime


@dataclass(frozen=True, slots=True)
class DeviceRevoked(Event):
    """A tenant no longer trusts a device: its signed requests are refused."""

    EVENT_TYPE: ClassVar[str] = "device_revoked"
    device_id: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class NotificationChannelSet(Event):
    """A tenant added (or, ``removed``, took away) a channel approvers are told through."""

    EVENT_TYPE: ClassVar[str] = "notification_channel_set"
    channel_id: str
    kind: str  # webhook, email, webpush
    target: str  # the URL, the address, or the push subscription's JSON
    removed: bool = False


@dataclass(frozen=True, slots=True)
class ApproverNotified(Event):
    """The notifier told (or, ``dead_lettered``, gave up telling) one channel of a request."""

    EVENT_TYPE: ClassVar[str] = "approver_notified"
    approval_id: str
    approval_run_id: str
    channel_id: str
    kind: str
    outcome: str  # delivered, dead_lettered
    attempts: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class SubjectErased(Event):
    """A subject's data key was destroyed; the run's personal fields now read as erased.

    One event per run the key sealed, keyed by that run, so it follows the run's events.
    """

    EVENT_TYPE: ClassVar[str] = "subject_erased"
    erasure_id: str
    key_id: str
    scope: str  # tenant, subject
    requested_by: str


EVENT_TYPES: Mapping[str, type[Event]] = {
    cls.EVENT_TYPE: cls
    for cls in (
        GoalReceived,
        GoalAssessed,
        PlanGenerated,
        StepStarted,
        StepCompleted,
        StepFailed,
        StepCompensated,
        StepCompensationFailed,
        ApprovalRequested,
        ApprovalGranted,
        ApprovalDenied,
        RunCancelRequested,
        RunCompleted,
        RunFailed,
        RunCancelled,
        AuditRecorded,
        AuditFactObserved,
        AuditCheckpointTaken,
        ApiKeyCreated,
        ApiKeyRotated,
        ApiKeyRevoked,
        KillSwitchToggled,
        PlanCacheInvalidated,
        PlanTemplateShared,
        WalletLinked,
        WalletUnlinked,
        SubscriptionChanged,
        MembershipChanged,
        NotificationChannelSet,
        ApproverNotified,
        DeviceRegistered,
        DeviceRevoked,
        SubjectErased,
    )
}
"""Every event type by its ``event_type`` name."""
