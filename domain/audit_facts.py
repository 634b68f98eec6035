"""What the audit chain records for each security-relevant event (pure).

:func:`fact_for` says what a source event means for the audit log; the chainer
(:mod:`projections.audit_chain`) links the resulting record after its tenant's head.
"""

from __future__ import annotations

from collections.abc import Mapping

from domain import ids
from domain.audit_retention import CHECKPOINT, PLATFORM, chain_stream, checkpoint_details
from domain.events import (
    ApiKeyCreated,
    ApiKeyRevoked,
    ApiKeyRotated,
    ApprovalDenied,
    ApprovalGranted,
    AuditCheckpointTaken,
    AuditFactObserved,
    AuditRecorded,
    DeviceRegistered,
    DeviceRevoked,
    Event,
    KillSwitchToggled,
    SubscriptionChanged,
)

Fact = tuple[str, str, str, str, str, Mapping[str, str]]


def fact_for(event: Event) -> Fact | None:
    """(category, action, outcome, subject, resource, details) to audit for ``event``."""
    actor = event.envelope.actor
    match event:
        case AuditFactObserved():
            e = event
            return (e.category, e.action, e.outcome, e.subject, e.resource, e.details)
        case AuditCheckpointTaken():
            category, action = CHECKPOINT
            chain = event.envelope.tenant_id
            details = checkpoint_details(event)
            return (category, action, "success", actor, f"audit-chain:{chain}", details)
        case ApiKeyCreated(key_id=key_id, prefix=prefix, scopes=scopes):
            return (
                "key_lifecycle",
                "create",
                "success",
                actor,
                f"api_key:{key_id}",
                {
                    "prefix": prefix,
                    "scopes": ",".join(scopes),
                    "expires_at": str(event.expires_at or ""),
                },
            )
        case ApiKeyRotated(key_id=key_id):
            return (
                "key_lifecycle",
                "rotate",
                "success",
                actor,
                f"api_key:{key_id}",
                {
                    "new_key_id": event.new_key_id,
                    "new_prefix": event.new_prefix,
                    "old_key_expires_at": event.old_key_expires_at.isoformat(),
                },
            )
        case ApiKeyRevoked(key_id=key_id, prefix=prefix, reason=reason):
            return (
                "key_lifecycle",
                "revoke",
                "success",
                actor,
                f"api_key:{key_id}",
                {"prefix": prefix, "reason": reason},
            )
        case DeviceRegistered(device_id=device_id, name=name, scopes=scopes):
            details = {"name": name, "scopes": ",".join(scopes), "public_key": event.public_key}
            return (
                "device_lifecycle",
                "register",
                "success",
                actor,
                f"device:{device_id}",
                details,
            )
        case DeviceRevoked(device_id=device_id, reason=reason):
            details = {"reason": reason}
            return ("device_lifecycle", "revoke", "success", actor, f"device:{device_id}", details)
        case KillSwitchToggled(feature=feature, enabled=enabled, reason=reason):
            return (
                "kill_switch",
                "enable" if enabled else "disable",
                "success",
                actor,
                f"feature:{feature}",
                {"reason": reason},
            )
        case SubscriptionChanged(tier=tier, reason=reason, expires_at=expires_at):
            return (
                "subscription",
                "set_tier",
                "success",
                actor,
                f"tenant:{event.envelope.tenant_id}",
                {"tier": tier, "reason": reason, "expires_at": str(expires_at or "")},
            )
        case ApprovalGranted() | ApprovalDenied():
            denied = isinstance(event, ApprovalDenied)
            details = {
                "run_id": event.envelope.run_id,
                "step_id": event.step_id,
                "reason": event.reason or "",
            }
            if isinstance(event, ApprovalDenied):
                details["timed_out"] = str(event.timed_out).lower()
            return (
                "approval",
                "deny" if denied else "grant",
                "success",
                event.approver,
                f"approval:{event.approval_id}",
                details,
            )
    return None


def unchained_record(event: Event, fact: Fact, chain: str | None = None) -> AuditRecorded:
    """The audit record for ``event`` in ``chain`` (default: its tenant's) before
    linking; its id is derived from the source and the chain. A record in the platform
    chain names the tenant whose key acted (``details.tenant``)."""
    env = event.envelope
    chain = env.tenant_id if chain is None else chain
    category, action, outcome, subject, resource, details = fact
    if chain == PLATFORM and env.tenant_id != PLATFORM:
        details = {**details, "tenant": env.tenant_id}
    return AuditRecorded(
        envelope=ids.envelope(
            AuditRecorded,
            run_id=chain_stream(chain),
            tenant_id=chain,
            actor=env.actor,
            correlation_id=env.correlation_id,
            causation_id=env.event_id,
            discriminator=(env.event_id,),
            occurred_at=env.occurred_at,
        ),
        category=category,
        action=action,
        outcome=outcome,
        subject=subject,
        resource=resource,
        details=dict(details),
    )
