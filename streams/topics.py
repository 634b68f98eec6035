"""Every Kafka topic OmniHub uses, declared once, and their idempotent creation.

Run events share one topic keyed by ``run_id``, so one run's events are totally
ordered in one partition. Event topics keep everything (``retention.ms=-1``): the log
is the system of record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

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
    "api_key_created": Topic.CONTROL,
    "api_key_rotated": Topic.CONTROL,
    "api_key_revoked": Topic.CONTROL,
    "kill_switch_toggled": Topic.CONTROL,
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
    return [
        TopicSpec(
            topic_name(settings, role),
            settings.topic_partitions,
            settings.topic_replication,
            keep_all,
        )
        for role in Topic
    ]


async def ensure_topics(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    """Create missing topics; return how existing ones differ from their declaration."""
    existing = set(await admin.list_topics())
    missing = [s for s in specs if s.name not in existing]
    if missing:
        try:
            await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, s.replication, topic_configs=dict(s.config))
                    for s in missing
                ]
            )
        except TopicAlreadyExistsError:
            pass  # another process created it first: fine, compare below
    mismatches = await _mismatches(admin, [s for s in specs if s.name in existing])
    for line in mismatches:
        log.warning("topic configuration mismatch: %s", line)
    return mismatches


async def _mismatches(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    if not specs:
        return []
    problems: list[str] = []
    described = await admin.describe_topics([s.name for s in specs])
    partitions = {t["topic"]: len(t["partitions"]) for t in described}
    resources = [ConfigResource(ConfigResourceType.TOPIC, s.name) for s in specs]
    actual: dict[str, dict[str, str]] = {}
    for response in await admin.describe_configs(resources):
        for _code, _msg, _rtype, name, entries in response.resources:
            actual[name] = {e[0]: e[1] for e in entries}
    for spec in specs:
        if partitions.get(spec.name) != spec.partitions:
            problems.append(
                f"{spec.name}: {partitions.get(spec.name)} partitions, declared {spec.partitions}"
            )
        for key, want in spec.config.items():
            have = actual.get(spec.name, {}).get(key)
            if have != want:
                problems.append(f"{spec.name}: {key}={have}, declared {want}")
    return problems
