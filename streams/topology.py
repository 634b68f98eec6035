"""Who consumes what, declared once: each consumer's topics and event types, and which
process runs it.

A consumer is one :class:`~streams.consumer.LogConsumer` with its own consumer group,
positions and dead letters (all named after it). A process runs one or more consumers;
``omnihub <process> run`` starts it. The API, the worker and the chain watcher consume
nothing: the API appends and reads projections, the worker is driven by Temporal, the
chain watcher follows the chain and appends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from domain.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyRotated,
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    AuditCheckpointTaken,
    AuditFactObserved,
    DeviceRegistered,
    DeviceRevoked,
    Event,
    GoalReceived,
    KillSwitchToggled,
    MembershipChanged,
    NotificationChannelSet,
    PlanCacheInvalidated,
    PlanGenerated,
    PlanTemplateShared,
    RunCancelRequested,
    SubjectErased,
    SubscriptionChanged,
    WalletLinked,
    WalletUnlinked,
)
from streams.topics import Topic


@dataclass(frozen=True)
class Subscription:
    """A consumer's name, the topics it reads and the event types it handles.

    ``types`` None means every type; otherwise records of other types are skipped on
    their ``event_type`` header without being decoded.
    """

    consumer: str
    topics: tuple[Topic, ...]
    types: frozenset[str] | None


def _types(*classes: type[Event]) -> frozenset[str]:
    return frozenset(c.EVENT_TYPE for c in classes)


KEY_EVENT_TYPES = _types(ApiKeyCreated, ApiKeyRotated, ApiKeyRevoked)
DEVICE_EVENT_TYPES = _types(DeviceRegistered, DeviceRevoked)
# What the audit chain records: security facts, key and device lifecycle, switches,
# approvals, subscription changes, retention checkpoints.
AUDIT_SOURCE_TYPES = (
    KEY_EVENT_TYPES
    | DEVICE_EVENT_TYPES
    | _types(
        AuditFactObserved,
        AuditCheckpointTaken,
        KillSwitchToggled,
        ApprovalGranted,
        ApprovalDenied,
        SubscriptionChanged,
    )
)

PROJECTOR = Subscription("projector", (Topic.RUNS, Topic.AUDIT), None)
GATEWAY_KEYS = Subscription("gateway-keys", (Topic.CONTROL,), KEY_EVENT_TYPES)
GATEWAY_DEVICES = Subscription("gateway-devices", (Topic.CONTROL,), DEVICE_EVENT_TYPES)
GATEWAY_KILLSWITCH = Subscription("gateway-killswitch", (Topic.CONTROL,), _types(KillSwitchToggled))
GATEWAY_TIERS = Subscription(
    "gateway-tiers",
    (Topic.CONTROL,),
    _types(SubscriptionChanged, WalletLinked, WalletUnlinked, MembershipChanged),
)
GATEWAY_AUDIT_CHAIN = Subscription(
    "gateway-audit-chain", (Topic.CONTROL, Topic.RUNS), AUDIT_SOURCE_TYPES
)
PLAN_CACHE = Subscription(
    "plan-cache",
    (Topic.RUNS, Topic.CONTROL),
    _types(PlanGenerated, PlanCacheInvalidated, PlanTemplateShared, SubjectErased),
)
SAGA_BRIDGE = Subscription(
    "saga-bridge",
    (Topic.RUNS,),
    _types(GoalReceived, ApprovalGranted, ApprovalDenied, RunCancelRequested, SubjectErased),
)
NOTIFIER = Subscription(
    "notifier",
    (Topic.RUNS, Topic.CONTROL),
    _types(ApprovalRequested, NotificationChannelSet, SubjectErased),
)

# Every long-running process, in start order, with the consumers it runs.
PROCESSES: Mapping[str, tuple[Subscription, ...]] = {
    "api": (),
    "gateway": (
        GATEWAY_KEYS,
        GATEWAY_KILLSWITCH,
        GATEWAY_AUDIT_CHAIN,
        GATEWAY_TIERS,
        GATEWAY_DEVICES,
    ),
    "worker": (),
    "saga-bridge": (SAGA_BRIDGE,),
    "plan-cache": (PLAN_CACHE,),
    "projector": (PROJECTOR,),
    "notifier": (NOTIFIER,),
    "chain-watcher": (),  # follows the chain, appends membership_changed
}
