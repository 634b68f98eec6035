"""Admin-client entry points: topic creation at process start."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient

from omnihub.settings import Settings
from streams.topics import ensure_topics, topic_specs


async def ensure_declared_topics(settings: Settings) -> list[str]:
    """Create every declared topic that is missing; return config mismatches."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, client_id="omnihub-admin"
    )
    await admin.start()
    try:
        return await ensure_topics(admin, topic_specs(settings))
    finally:
        await admin.close()
