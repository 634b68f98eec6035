"""Every Kafka topic OmniHub uses, declared once, and their idempotent creation.

Run events share one topic keyed by ``run_id``, so one run's events are totally
ordered in one partition. Event topics keep everything (``retention.ms=-1``): the log
is the system of record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

from domain.audit_retention import longest_retention_days
from domain.events import EVENT_TYPES
from omnihub.settings import Settings

log = logging.getLogger(__name__)


class Topic(StrEnum):
    """What a topic holds; its Kafka name is ``<prefix>.<role>.v1``."""

    RUNS = "runs"  # every run event, key run_id
    AUDIT = "audit"  # security audit events, key audit-<tenant>
    CONTROL = "control"  # key lifecycle, kill switches, cache invalidation
    DEADLETTER = "deadletter"  # undecodable or unprocessable records, with the reason


# Which topic each event type is appended to; anything not listed is a run event.
EVENT_TOPICS: Mapping[str, Topic] = {
    "audit_recorded": Topic.AUDIT,
    # Control plane; the audit chainer reads audit facts here, keyed audit-<tenant>.
    "audit_fact_observed": Topic.CONTROL,
    "audit_checkpoint_taken": Topic.CONTROL,
    "api_key_created": Topic.CONTROL,
    "api_key_rotated": Topic.CONTROL,
    "api_key_revoked": Topic.CONTROL,
    "kill_switch_toggled": Topic.CONTROL,
    "plan_cache_invalidated": Topic.CONTROL,
    "plan_template_shared": Topic.CONTROL,
    # Memberships on chain (issue 10): who holds which tier, keyed per tenant or token.
    "wallet_linked": Topic.CONTROL,
    "wallet_unlinked": Topic.CONTROL,
    "subscription_changed": Topic.CONTROL,
    "membership_changed": Topic.CONTROL,
    # Approvers notified (issue 11): channels and deliveries, keyed notify-<tenant>.
    "notification_channel_set": Topic.CONTROL,
    "approver_notified": Topic.CONTROL,
    # Trusted devices (issue 10): keyed devices-<tenant>.
    "device_registered": Topic.CONTROL,
    "device_revoked": Topic.CONTROL,
}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication: int
    config: Mapping[str, str] = field(default_factory=dict)


def topic_name(settings: Settings, role: Topic) -> str:
    return f"{settings.topic_prefix}.{role.value}.v1"


def topic_for(settings: Settings, event_type: str) -> str:
    """The topic an event of ``event_type`` is appended to."""
    if event_type not in EVENT_TYPES:
        raise KeyError(f"unknown event type {event_type!r}")
    return topic_name(settings, EVENT_TOPICS.get(event_type, Topic.RUNS))


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The declared topics with their partitions and configuration."""
    keep_all = {
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "cleanup.policy": "delete",
        "min.insync.replicas": str(settings.topic_min_insync),
    }
    # The audit log alone may age out. Kafka keeps a topic for one retention, so it keeps
    # the longest tier's (forever while a tier keeps forever); each tenant's tier is
    # enforced by `omnihub audit expire` on the read model. OMNIHUB_AUDIT_RETENTION_DAYS
    # overrides it: `omnihub audit verify` then starts at the oldest record still kept.
    days = settings.audit_retention_days or longest_retention_days()
    audit = keep_all | ({"retention.ms": str(days * 86_400_000)} if days else {})
    return [
        TopicSpec(
            topic_name(settings, role),
            settings.topic_partitions,
            settings.topic_replication,
            audit if role is Topic.AUDIT else keep_all,
        )
        for role in Topic
    ]


async def ensure_topics(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    """Create missing topics; return how existing ones differ from their declaration."""
    existing = set(await admin.list_topics())
    created = await _create(admin, [s for s in specs if s.name not in existing])
    mismatches = await _mismatches(admin, [s for s in specs if s.name not in created])
    for line in mismatches:
        log.warning("topic configuration mismatch: %s", line)
    return mismatches


async def check_topics(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    """How the cluster differs from the declaration, changing nothing (missing topics too)."""
    existing = set(await admin.list_topics())
    missing = [f"{s.name}: missing" for s in specs if s.name not in existing]
    return missing + await _mismatches(admin, [s for s in specs if s.name in existing])


async def _create(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> set[str]:
    """Create ``specs``; the names this call really created.

    A topic made a moment ago by another client may be missing from this client's
    metadata; the broker then answers TOPIC_ALREADY_EXISTS for it, and it is compared
    like any existing topic.
    """
    if not specs:
        return set()
    response = await admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication, topic_configs=dict(s.config)) for s in specs]
    )
    created = set()
    for name, code, *rest in response.topic_errors:
        if code == 0:
            created.add(name)
        elif code != TopicAlreadyExistsError.errno:
            raise RuntimeError(f"cannot create topic {name}: error {code} {rest}")
    return created


async def _partition_counts(
    admin: AIOKafkaAdminClient, names: Sequence[str], settle_s: float = 5.0
) -> dict[str, int]:
    """Partitions per topic, waiting out the broker's metadata lag after a creation."""
    deadline = asyncio.get_running_loop().time() + settle_s
    while True:
        described = await admin.describe_topics(list(names))
        counts = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        settled = all(counts.get(n) for n in names)
        if settled or asyncio.get_running_loop().time() > deadline:
            return counts
        await asyncio.sleep(0.1)


async def _mismatches(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    if not specs:
        return []
    problems: list[str] = []
    partitions = await _partition_counts(admin, [s.name for s in specs])
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    actual: dict[str, dict[str, str]] = {}
    failed: dict[str, str] = {}
    for response in await admin.describe_configs(resources):
        for code, _msg, _rtype, name, entries in response.resources:
            if code == UnknownTopicOrPartitionError.errno:
                failed[name] = "missing"  # listed a moment ago, deleted since (or going)
            elif code != 0:
                failed[name] = f"configuration unreadable (error {code})"
            actual[name] = {e[0]: e[1] for e in entries}
    for spec in specs:
        if spec.name in failed:
            problems.append(f"{spec.name}: {failed[spec.name]}")
            continue
        if partitions.get(spec.name) != spec.partitions:
            problems.append(
                f"{spec.name}: {partitions.get(spec.name)} partitions, declared {spec.partitions}"
            )
        for key, want in spec.config.items():
            have = actual.get(spec.name, {}).get(key)
            if have != want:
                problems.append(f"{spec.name}: {key}={have}, declared {want}")
    return problems
