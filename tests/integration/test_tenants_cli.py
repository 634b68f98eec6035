"""``omnihub tenants set-tier`` appends subscription_changed, which the fold turns into a tier."""

from __future__ import annotations

import os
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

from apps.commands.operator import os_user
from domain.entitlements import effective, fold
from domain.events import SubscriptionChanged
from infra.launch import omnihub_argv
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry


def set_tier(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        omnihub_argv("tenants", "set-tier", *args),
        env={**os.environ, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_set_tier_appends_a_subscription_the_fold_reads(stack: StackConfig) -> None:
    prefix = f"tier{uuid.uuid4().hex[:8]}"
    env = {**stack.client_env(), "OMNIHUB_TOPIC_PREFIX": prefix, "OMNIHUB_TOPIC_PARTITIONS": "1"}
    until = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)
    done = set_tier(env, "--tenant", "acme", "--tier", "pro", "--until", until.isoformat())
    assert done.returncode == 0, done.stderr
    refused = set_tier(env, "--tenant", "acme", "--tier", "platinum")
    assert refused.returncode == 2 and "invalid choice" in refused.stderr

    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    events = [
        rec.event
        async for rec in read_log(
            stack.client_env()["OMNIHUB_KAFKA_BOOTSTRAP"], codec, [f"{prefix}.control.v1"]
        )
    ]
    assert [(type(e), e.envelope.run_id) for e in events] == [(SubscriptionChanged, "tier-acme")]
    result = effective(fold("acme", events), datetime.now(UTC))
    assert (result.tier, result.source, result.until) == ("pro", "subscription", until)


async def test_set_tier_names_the_os_user_or_whom_it_acted_as(stack: StackConfig) -> None:
    prefix = f"tier{uuid.uuid4().hex[:8]}"
    env = {**stack.client_env(), "OMNIHUB_TOPIC_PREFIX": prefix, "OMNIHUB_TOPIC_PARTITIONS": "1"}
    assert set_tier(env, "--tenant", "acme", "--tier", "pro").returncode == 0
    done = set_tier(env, "--tenant", "acme", "--tier", "starter", "--as", "alice")
    assert done.returncode == 0, done.stderr

    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    bootstrap = stack.client_env()["OMNIHUB_KAFKA_BOOTSTRAP"]
    actors = [
        rec.event.envelope.actor
        async for rec in read_log(bootstrap, codec, [f"{prefix}.control.v1"])
    ]
    me = os_user()
    assert actors == [f"user:{me}", f"user:alice (os user {me})"]
