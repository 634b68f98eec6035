"""A CLI change that is no event of its own (here a projection rebuild) is an operations
audit fact naming the OS user, and whom it acted as."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from apps.commands.operator import os_user
from domain.audit_retention import PLATFORM
from domain.events import AuditFactObserved
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name
from tests.integration.test_projection_store import isolated_settings


async def test_a_rebuild_is_audited_with_the_os_user_and_the_as_name(stack: StackConfig) -> None:
    settings = isolated_settings()
    await ensure_declared_topics(settings)
    env = {
        **os.environ,
        **stack.client_env(),
        "OMNIHUB_TOPIC_PREFIX": settings.topic_prefix,
        "OMNIHUB_PROJECTIONS_SCHEMA": settings.projections_schema,
        "OMNIHUB_PROJECTIONS_REDIS_PREFIX": settings.projections_redis_prefix,
    }
    argv = [sys.executable, "-m", "apps.cli", "projections", "rebuild", "redis", "--verify-only"]
    for extra in ([], ["--as", "alice"]):
        done = await asyncio.to_thread(
            subprocess.run,
            [*argv, *extra],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    control = topic_name(settings, Topic.CONTROL)
    facts = [
        rec.event
        async for rec in read_log(settings.kafka_bootstrap, codec, [control])
        if isinstance(rec.event, AuditFactObserved)
    ]
    me = os_user()
    assert [f.envelope.tenant_id for f in facts] == [PLATFORM, PLATFORM]  # the platform chain
    assert [(f.category, f.action, f.resource, f.outcome) for f in facts] == [
        ("operations", "projection_rebuild", "projection:redis", "success")
    ] * 2
    assert [f.subject for f in facts] == [f"user:{me}", f"user:alice (os user {me})"]
    assert facts[1].details["os_user"] == me and facts[1].details["acting_as"] == "alice"
    assert facts[0].details["verify_only"] == "true" and "acting_as" not in facts[0].details
