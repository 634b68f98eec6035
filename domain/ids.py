"""Deterministic identifiers, so a retried append of the same fact is recognisable."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from domain.events import Envelope, Event

# Fixed forever: changing it would change every derived id.
OMNIHUB_NAMESPACE = uuid.UUID("5b0f4f0e-7c1a-4d0b-9b7e-0f6d1c2a9e31")


def derive_id(*parts: str | int) -> str:
    """A UUIDv5 over the parts; the same parts always give the same id."""
    return str(uuid.uuid5(OMNIHUB_NAMESPACE, "\x1f".join(str(p) for p in parts)))


def event_id(run_id: str, event_type: str, *discriminator: str | int) -> str:
    """The id of the fact ``event_type`` in stream ``run_id``.

    ``discriminator`` tells apart facts of one type in one run (a step id and an
    attempt, say). Retrying the same append yields the same id.
    """
    return derive_id("event", run_id, event_type, *discriminator)


def run_id_for_request(tenant_id: str, idempotency_key: str) -> str:
    """The run a client's ``Idempotency-Key`` names, stable across retries."""
    return derive_id("run", tenant_id, idempotency_key)


def envelope(
    event_type: type[Event],
    *,
    run_id: str,
    tenant_id: str,
    actor: str,
    correlation_id: str,
    causation_id: str | None = None,
    discriminator: tuple[str | int, ...] = (),
    occurred_at: datetime | None = None,
) -> Envelope:
    """An envelope for a new ``event_type`` with its deterministic event id."""
    when = occurred_at or datetime.now(UTC)
    if when.tzinfo is None:
        raise ValueError("occurred_at must be timezone-aware (UTC)")
    # The wire keeps milliseconds; truncate now so an event equals its decoded self.
    when = when.replace(microsecond=when.microsecond - when.microsecond % 1000)
    return Envelope(
        event_id=event_id(run_id, event_type.EVENT_TYPE, *discriminator),
        event_type=event_type.EVENT_TYPE,
        schema_version=event_type.SCHEMA_VERSION,
        run_id=run_id,
        tenant_id=tenant_id,
        occurred_at=when.astimezone(UTC),
        causation_id=causation_id,
        correlation_id=correlation_id,
        actor=actor,
    )
