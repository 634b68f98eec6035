"""Erasure from a fresh stack, HTTP in: a goal naming a data subject is read back in the
clear, the admin route (and the CLI) erase it, and the read API then says erased."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import httpx
import pytest

from domain import ids
from domain.events import ApprovalRequested
from domain.privacy import ERASED
from infra.launch import omnihub_argv, running, running_api
from infra.stack import StackConfig
from omnihub.settings import Settings
from projections.keyring import privacy_for
from streams.codec import EventCodec
from streams.producer import KafkaEventAppender
from streams.replay import end_offsets, replay
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, omnihub, running_processor
from tests.e2e.test_projection_api import poll
from tests.integration.test_privacy_erasure import postgres_tables_holding


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(stack, OMNIHUB_PROJECTIONS_REDIS_PREFIX=f"pv{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("privacy-api")
    with (
        running(omnihub_argv("projector", "run"), env, logs / "projector.log", grace_s=30),
        running_processor(env, logs),
        running_api(env, logs) as url,
    ):
        yield url


async def post(url: str, key: CliKey, path: str, body: dict[str, object]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.post(path, json=body, headers={"Authorization": f"Bearer {key.key}"})


async def submit(url: str, key: CliKey, goal: str, subject: str) -> str:
    r = await post(url, key, "/api/v1/goals", {"goal": goal, "context": {"data_subject": subject}})
    assert r.status_code == 202, r.text
    return str(r.json()["run_id"])


async def test_the_admin_route_and_the_cli_erase_a_data_subject(
    api: str, env: dict[str, str]
) -> None:
    tenant = f"pv-{uuid.uuid4().hex[:6]}"
    key = await asyncio.to_thread(cli_key, env, tenant, "admin,read")
    secret = f"Halvorsen{uuid.uuid4().hex[:6]}"
    by_route = await submit(api, key, f"Send the lease to {secret}", f"{secret}@example.com")
    by_cli = await submit(api, key, f"Call {secret} Junior", f"junior-{secret}@example.com")
    for run_id in (by_route, by_cli):
        run = await poll(api, key, f"/api/v1/runs/{run_id}", lambda j: j["goal"] is not None)
        assert secret in run["goal"]  # the projector holds the key: plaintext

    r = await post(api, key, "/api/v1/admin/privacy/erasures", {"subject": f"{secret}@example.com"})
    assert r.status_code == 200, r.text
    assert r.json() == {"keys_destroyed": 1, "runs_erased": 1, "marker": "[erased]"}
    run = await poll(api, key, f"/api/v1/runs/{by_route}", lambda j: j["goal"] == "[erased]")
    assert run["timeline"][-1]["event_type"] == "subject_erased"
    assert run["timeline"][0]["summary"] == "goal received: [erased]"
    other = await poll(api, key, f"/api/v1/runs/{by_cli}", lambda j: j["goal"] is not None)
    assert secret in other["goal"]  # another subject's key is untouched

    done = await asyncio.to_thread(
        omnihub, env, "privacy", "erase", "--subject", f"junior-{secret}@example.com", "--json"
    )
    assert done.returncode == 0, done.stderr
    erased = json.loads(done.stdout)
    assert [(e["tenant_id"], e["scope"], e["runs"]) for e in erased["erased"]] == [
        (tenant, "subject", 1)
    ]
    await poll(api, key, f"/api/v1/runs/{by_cli}", lambda j: j["goal"] == "[erased]")

    refused = await post(
        api,
        await asyncio.to_thread(cli_key, env, tenant, "read"),
        "/api/v1/admin/privacy/erasures",
        {"subject": "anyone"},
    )
    assert refused.status_code == 403


def settings_of(env: dict[str, str]) -> Settings:
    """In-process settings for the stack the processes in ``env`` use."""
    with mock.patch.dict(os.environ, env):
        return Settings()


async def request_approval(settings: Settings, run_id: str, tenant: str, text: str) -> str:
    """An approval for ``run_id``'s step, as the saga asks for it (sealed like the saga's)."""
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    privacy = privacy_for(settings, codec.registry)
    appender = KafkaEventAppender(settings, codec, timeout_s=60, privacy=privacy)
    approval_id = f"ap-{run_id}"
    env = ids.envelope(
        ApprovalRequested,
        run_id=run_id,
        tenant_id=tenant,
        actor="saga",
        correlation_id=run_id,
        discriminator=("a",),
    )
    hour = datetime.now(UTC) + timedelta(hours=1)
    reasons = ("a wire transfer",)  # the risk policy's own words, not personal
    event = ApprovalRequested(env, approval_id, "s1", "http_call", 0.9, reasons, hour, text)
    try:
        await appender.append(event)
    finally:
        await appender.stop()
        await privacy.close()
    return approval_id


async def topics_holding(settings: Settings, text: str) -> list[str]:
    """``topic:event_type`` of each record whose raw bytes (value, key, headers) contain
    ``text``."""
    topics = {topic_name(settings, t): t.value for t in Topic}
    ends = await end_offsets(settings.kafka_bootstrap, list(topics))
    ranges = {tp: (0, end) for tp, end in ends.items() if end}
    found = []
    async for topic, _, raws in replay(settings.kafka_bootstrap, ranges):
        for raw in raws:
            blobs = [raw.value or b"", raw.key or b"", *(v for _, v in raw.headers)]
            if any(text.encode() in blob for blob in blobs):
                kind = dict(raw.headers).get("event_type", b"?").decode()
                found.append(f"{topics[topic]}:{kind}")
    return found


async def test_decision_notes_reach_the_audit_log_sealed_and_erasure_reaches_them(
    api: str, env: dict[str, str]
) -> None:
    tenant = f"pa-{uuid.uuid4().hex[:6]}"
    requester = await asyncio.to_thread(cli_key, env, tenant, "admin,read")
    decider = await asyncio.to_thread(
        cli_key, env, tenant, "approvals:decide,runs:cancel,audit:read,read"
    )
    secret = f"Thistlewood{uuid.uuid4().hex[:6]}"
    subject = f"dpo-case-{uuid.uuid4().hex[:6]}@example.com"
    run_id = await submit(api, requester, f"Wire rent for {secret}", subject)
    await poll(api, requester, f"/api/v1/runs/{run_id}", lambda j: j["goal"] is not None)
    settings = settings_of(env)
    approval_id = await request_approval(settings, run_id, tenant, f"pays {secret}")
    await poll(api, requester, f"/api/v1/approvals/{approval_id}", lambda j: True)
    note: dict[str, object] = {"decision": "grant", "note": f"{secret} confirmed by phone"}
    r = await post(api, decider, f"/api/v1/approvals/{approval_id}", note)
    assert r.status_code == 202, r.text
    r = await post(api, decider, f"/api/v1/runs/{run_id}/cancel", {"reason": f"{secret} moved"})
    assert r.status_code == 202, r.text
    page = await poll(
        api, decider, "/api/v1/audit", lambda j: len(j["items"]) >= 1, category="approval"
    )
    (granted,) = [x for x in page["items"] if x["action"] == "grant"]
    assert granted["details"]["reason"] == f"{secret} confirmed by phone"  # read with the key
    assert page["verification"]["ok"], json.dumps(page)
    # The log, audit and control topics included, holds the note sealed only.
    assert await topics_holding(settings, secret) == []

    r = await post(api, requester, "/api/v1/admin/privacy/erasures", {"subject": subject})
    assert r.status_code == 200, r.text
    page = await poll(
        api,
        decider,
        "/api/v1/audit",
        lambda j: any(x["details"].get("reason") == ERASED for x in j["items"]),
        category="approval",
    )
    assert page["verification"]["ok"], json.dumps(page)
    assert await postgres_tables_holding(settings, secret) == []
    assert await topics_holding(settings, secret) == []
    verified = await asyncio.to_thread(omnihub, env, "audit", "verify", "--tenant", tenant)
    assert verified.returncode == 0, verified.stdout + verified.stderr
