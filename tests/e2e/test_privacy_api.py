"""Erasure from a fresh stack, HTTP in: a goal naming a data subject is read back in the
clear, the admin route (and the CLI) erase it, and the read API then says erased; the
control plane's text (key and device names, revocation, kill switch and subscription
reasons) is sealed, read in the clear, and erased with its tenant."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain import ids
from domain.device_signature import public_key_text
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


async def call(url: str, key: CliKey, method: str, path: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        headers = {"Authorization": f"Bearer {key.key}"}
        return await client.request(method, path, headers=headers, **kw)


def _audited(page: dict[str, Any], secret: str) -> set[str]:
    """``category.action`` of each record of ``page`` some detail of which names ``secret``."""
    return {
        f"{i['category']}.{i['action']}"
        for i in page["items"]
        if any(secret in v for v in i["details"].values())
    }


async def test_the_control_planes_text_is_sealed_read_in_the_clear_and_erased_with_the_tenant(
    api: str, env: dict[str, str]
) -> None:
    tenant = f"pk-{uuid.uuid4().hex[:6]}"
    ops = await asyncio.to_thread(cli_key, env, tenant, "admin,platform:killswitch,platform:tiers")
    secret = f"Pemberton{uuid.uuid4().hex[:6]}"
    by_cli = await asyncio.to_thread(
        omnihub, env, "keys", "create", "--tenant", tenant, "--scopes", "read",
        "--name", f"{secret} cli key",
    )  # fmt: skip
    assert by_cli.returncode == 0, by_cli.stderr
    r = await call(api, ops, "POST", "/api/v1/keys", json={"scopes": ["read"], "name": secret})
    assert r.status_code == 201, r.text
    key_id = r.json()["key_id"]
    r = await call(api, ops, "POST", f"/api/v1/keys/{key_id}/revoke", json={"reason": secret})
    assert r.status_code == 200 and r.json()["name"] == secret, r.text
    phone = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    device = {"public_key": public_key_text(phone), "name": f"{secret}'s phone", "scopes": ["read"]}
    r = await call(api, ops, "POST", "/api/v1/devices", json=device)
    assert r.status_code == 201 and r.json()["name"] == f"{secret}'s phone", r.text
    device_id = r.json()["device_id"]
    r = await call(api, ops, "DELETE", f"/api/v1/devices/{device_id}", params={"reason": secret})
    assert r.status_code == 200 and r.json()["name"] == f"{secret}'s phone", r.text
    # A kill switch is platform-wide; its reason is the toggling tenant's words.
    switch = {"enabled": True, "reason": f"{secret} on call"}
    r = await call(api, ops, "PUT", "/api/v1/admin/kill-switches/tool:wait", json=switch)
    assert r.status_code == 200, r.text
    tier = {"tier": "pro", "reason": f"{secret} signed"}
    r = await call(api, ops, "PUT", f"/api/v1/admin/tenants/{tenant}/tier", json=tier)
    assert r.status_code == 200, r.text
    wallet = "0x" + uuid.uuid4().hex + uuid.uuid4().hex[:8]
    r = await call(api, ops, "DELETE", f"/api/v1/auth/wallet/{wallet}", params={"reason": secret})
    assert r.status_code == 200, r.text
    set_tier = await asyncio.to_thread(
        omnihub, env, "tenants", "set-tier", "--tenant", tenant, "--tier", "pro",
        "--reason", f"{secret} by cli",
    )  # fmt: skip
    assert set_tier.returncode == 0, set_tier.stderr
    invalidated = await asyncio.to_thread(
        omnihub, env, "plan-cache", "invalidate", "--tenant", tenant, "--reason", secret
    )
    assert invalidated.returncode == 0, invalidated.stderr

    # Read in the clear by whoever holds the key: the API, the audit pages, the CLI.
    names = {k["name"] for k in (await call(api, ops, "GET", "/api/v1/keys")).json()}
    assert {secret, f"{secret} cli key"} <= names
    (listed,) = (await call(api, ops, "GET", "/api/v1/devices")).json()
    assert listed["name"] == f"{secret}'s phone"
    switches = (await call(api, ops, "GET", "/api/v1/admin/kill-switches")).json()
    assert {"feature": "tool:wait", "reason": f"{secret} on call"}.items() <= next(
        s for s in switches if s["feature"] == "tool:wait"
    ).items()
    audited = {"key_lifecycle.revoke", "device_lifecycle.register", "device_lifecycle.revoke",
               "kill_switch.enable", "subscription.set_tier"}  # fmt: skip
    # Every request's authentication is audited too (each poll adds one): read deep pages.
    page = await poll(
        api, ops, "/api/v1/audit", lambda j: _audited(j, secret) >= audited, limit=500
    )
    assert page["verification"]["ok"], json.dumps(page)
    platform = await poll(
        api, ops, "/api/v1/audit", lambda j: bool(_audited(j, secret)), chain="platform"
    )
    assert _audited(platform, secret) == {"kill_switch.enable"}
    listing = await asyncio.to_thread(omnihub, env, "keys", "list", "--tenant", tenant)
    assert f"{secret} cli key" in listing.stdout, listing.stdout + listing.stderr
    tail = ("tail", "--topic", "control", "--from-beginning", "--no-follow", "--json")
    tail += ("--tenant", tenant)
    tailed = await asyncio.to_thread(omnihub, env, *tail)
    assert tailed.stdout.count(secret) >= 9, tailed.stdout + tailed.stderr
    # ...and nowhere in the clear at rest: no topic's bytes, no table (the gateway's
    # read models keep the text sealed, as the log holds it).
    settings = settings_of(env)
    assert await topics_holding(settings, secret) == []
    assert await postgres_tables_holding(settings, secret) == []

    done = await asyncio.to_thread(omnihub, env, "privacy", "erase", "--tenant", tenant, "--json")
    assert done.returncode == 0, done.stderr
    assert [e["scope"] for e in json.loads(done.stdout)["erased"]] == ["tenant"]
    # The API may open with a key it read before the erasure for 30 s at most.
    keys = await poll(api, ops, "/api/v1/keys", lambda j: {k["name"] for k in j} == {"", ERASED})
    assert len(keys) == 3
    devices = await poll(api, ops, "/api/v1/devices", lambda j: j[0]["name"] == ERASED)
    assert len(devices) == 1
    switches = (await call(api, ops, "GET", "/api/v1/admin/kill-switches")).json()
    assert next(s for s in switches if s["feature"] == "tool:wait")["reason"] == ERASED
    page = (await call(api, ops, "GET", "/api/v1/audit", params={"limit": 500})).json()
    assert page["next_cursor"] is None, "the tenant's whole chain fits one page"
    assert not _audited(page, secret) and page["verification"]["ok"], json.dumps(page)
    assert any(ERASED in i["details"].values() for i in page["items"])
    platform = (await call(api, ops, "GET", "/api/v1/audit", params={"chain": "platform"})).json()
    assert not _audited(platform, secret) and platform["verification"]["ok"]
    listing = await asyncio.to_thread(omnihub, env, "keys", "list", "--tenant", tenant)
    assert secret not in listing.stdout and ERASED in listing.stdout, listing.stdout
    tailed = await asyncio.to_thread(omnihub, env, *tail)
    assert secret not in tailed.stdout and ERASED in tailed.stdout, tailed.stdout
    for chain in (("--tenant", tenant), ("--platform",)):
        verified = await asyncio.to_thread(omnihub, env, "audit", "verify", *chain)
        assert verified.returncode == 0, verified.stdout + verified.stderr
    assert await topics_holding(settings, secret) == []
    assert await postgres_tables_holding(settings, secret) == []
