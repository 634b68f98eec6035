"""An erasure request: destroy the subject's data keys, tell the log, record who asked.

For each destroyed key, one ``subject_erased`` per run it sealed (keyed by the run, so it
follows the run's events and the projector overwrites what it holds of them), then one
audit fact naming the requester, which the gateway's chainer links into the tenant's
hash chain. The chain still verifies: it hashed the ciphertext, which stays in the log.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from domain import ids
from domain.events import AuditFactObserved, Event, SubjectErased
from projections.keyring import Erased, PgKeyStore
from streams.producer import EventAppender


async def erase_subject(
    store: PgKeyStore,
    appender: EventAppender,
    *,
    tenant_id: str | None,
    subject: str | None,
    requested_by: str,
    details: Mapping[str, str] | None = None,
) -> list[Erased]:
    """Erase a data subject (in every tenant) or a whole tenant; what was destroyed.
    ``details`` go into the audit fact (an operator's OS user, whom it acted as)."""
    erasure_id = uuid.uuid4().hex
    erased = await store.erase(tenant_id=tenant_id, subject=subject, requested_by=requested_by)
    events: list[Event] = []
    for key in erased:
        events += [_erased_event(erasure_id, key, run_id, requested_by) for run_id in key.run_ids]
        events.append(_audit_fact(erasure_id, key, requested_by, details or {}))
    for start in range(0, len(events), 500):
        await appender.append_many(events[start : start + 500])
    return erased


def _erased_event(erasure_id: str, key: Erased, run_id: str, requested_by: str) -> SubjectErased:
    return SubjectErased(
        envelope=ids.envelope(
            SubjectErased,
            run_id=run_id,
            tenant_id=key.tenant_id,
            actor=requested_by,
            correlation_id=erasure_id,
            discriminator=(erasure_id, key.key_id),
        ),
        erasure_id=erasure_id,
        key_id=key.key_id,
        scope=key.scope,
        requested_by=requested_by,
    )


def _audit_fact(
    erasure_id: str, key: Erased, requested_by: str, details: Mapping[str, str]
) -> AuditFactObserved:
    return AuditFactObserved(
        envelope=ids.envelope(
            AuditFactObserved,
            run_id=f"audit-{key.tenant_id}",
            tenant_id=key.tenant_id,
            actor=requested_by,
            correlation_id=erasure_id,
            discriminator=(erasure_id, key.key_id),
        ),
        category="privacy",
        action="erase",
        outcome="success",
        subject=requested_by,
        resource=f"data_key:{key.key_id}",
        details={
            **details,
            "erasure_id": erasure_id,
            "scope": key.scope,
            "runs": str(len(key.run_ids)),
        },
    )
