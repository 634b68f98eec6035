"""The gateway end to end: real API and processor processes on the test stack.

Keys made by the CLI and the admin API work at once; every route answers 401/403/2xx by
the key's scopes; rotated and revoked keys behave; a burst never exceeds the rate limit;
oversize bodies are refused before they are read; the goals kill switch bites; and the
tenant's audit chain verifies, while a forged record is found.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from domain.audit_chain import compute_hash
from domain.events import AuditRecorded
from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, omnihub, running_processor


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(stack, OMNIHUB_RATE_LIMIT_PER_MINUTE="100000")


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway")


@pytest.fixture(scope="module")
def api(env: dict[str, str], logs: Path) -> Iterator[str]:
    with running_processor(env, logs), running_api(env, logs) as url:
        yield url


@pytest.fixture(scope="module")
def admin(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "tenant-a", "admin")


@pytest.fixture(scope="module")
def platform(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "ops", "platform:killswitch")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def make_key(api: str, admin_key: str, scopes: list[str], **extra: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.post(
            "/api/v1/keys", json={"scopes": scopes, **extra}, headers=bearer(admin_key)
        )
    assert r.status_code == 201, r.text
    assert r.json()["active"] is True
    return r.json()


# (method, path, body, scope needed, success status)
ROUTES = [
    ("POST", "/api/v1/goals", {"goal": "Book flight to Paris"}, "goals:write", 202),
    ("POST", "/api/v1/goals:batch", {"goals": [{"goal": "a"}, {"goal": "b"}]}, "goals:write", 207),
    ("GET", "/api/v1/keys", None, "keys:read", 200),
    ("POST", "/api/v1/keys", {"scopes": ["runs:read"]}, "keys:admin", 201),
    ("GET", "/api/v1/admin/kill-switches", None, "platform:killswitch", 200),
    (
        "PUT",
        "/api/v1/admin/kill-switches/llm_planner",
        {"enabled": True, "reason": "matrix"},
        "platform:killswitch",
        200,
    ),
]

# Which key may call which route: written out, not derived from domain.scopes.
ALLOWED = {
    "admin": {"goals:write", "keys:read", "keys:admin"},
    "write": {"goals:write", "keys:read"},
    "read": {"keys:read"},
    "goals:write": {"goals:write"},
    "audit:read": set(),
    "platform:killswitch": {"platform:killswitch"},
}


async def test_routes_x_scopes_matrix(api: str, admin: CliKey, platform: CliKey) -> None:
    keys = {"admin": admin.key, "platform:killswitch": platform.key}
    for scope in ("write", "read", "goals:write", "audit:read"):
        keys[scope] = (await make_key(api, admin.key, [scope]))["key"]
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        for method, path, body, needed, ok in ROUTES:
            anonymous = await c.request(method, path, json=body)
            assert anonymous.status_code == 401, (method, path)
            for name, key in keys.items():
                r = await c.request(method, path, json=body, headers=bearer(key))
                if needed in ALLOWED[name]:
                    assert r.status_code == ok, (name, method, path, r.text)
                else:
                    assert r.status_code == 403, (name, method, path, r.text)
                    assert r.headers["content-type"] == "application/problem+json"
                    assert r.json()["needed"] == needed


async def test_rotation_keeps_the_old_key_for_its_grace_only(api: str, admin: CliKey) -> None:
    first = await make_key(api, admin.key, ["read"])
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.post(
            f"/api/v1/keys/{first['key_id']}/rotate",
            json={"grace_s": 3600},
            headers=bearer(admin.key),
        )
        assert r.status_code == 201, r.text
        second = r.json()
        for key in (first["key"], second["key"]):
            assert (await c.get("/api/v1/keys", headers=bearer(key))).status_code == 200
        r = await c.post(
            f"/api/v1/keys/{second['key_id']}/rotate",
            json={"grace_s": 0},
            headers=bearer(admin.key),
        )
        third = r.json()
        assert (await c.get("/api/v1/keys", headers=bearer(second["key"]))).status_code == 401
        assert (await c.get("/api/v1/keys", headers=bearer(third["key"]))).status_code == 200
        assert (await c.get("/api/v1/keys", headers=bearer(first["key"]))).status_code == 200


async def test_a_revoked_key_stops_working_at_once(api: str, admin: CliKey) -> None:
    victim = await make_key(api, admin.key, ["read"])
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        assert (await c.get("/api/v1/keys", headers=bearer(victim["key"]))).status_code == 200
        r = await c.post(
            f"/api/v1/keys/{victim['key_id']}/revoke",
            json={"reason": "leaked"},
            headers=bearer(admin.key),
        )
        assert r.status_code == 200 and r.json()["revoked_at"] is not None
        r = await c.get("/api/v1/keys", headers=bearer(victim["key"]))
        assert r.status_code == 401 and r.json()["type"].endswith("/unauthenticated")
        listed = await c.get("/api/v1/keys", headers=bearer(admin.key))
        assert all("key" not in k and "key_hash" not in k for k in listed.json())


async def test_no_key_mints_a_more_powerful_one(api: str, admin: CliKey) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.post(
            "/api/v1/keys", json={"scopes": ["platform:killswitch"]}, headers=bearer(admin.key)
        )
        assert r.status_code == 403 and r.json()["type"].endswith("/scope-escalation")
        r = await c.post("/api/v1/keys", json={"scopes": ["root"]}, headers=bearer(admin.key))
        assert r.status_code == 422


async def test_keys_of_another_tenant_are_invisible_and_untouchable(
    api: str, env: dict[str, str], admin: CliKey
) -> None:
    other = cli_key(env, "tenant-b", "admin")
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        listed = await c.get("/api/v1/keys", headers=bearer(other.key))
        assert [k["key_id"] for k in listed.json()] == [other.key_id]
        for action in ("rotate", "revoke"):
            r = await c.post(
                f"/api/v1/keys/{admin.key_id}/{action}", json={}, headers=bearer(other.key)
            )
            assert r.status_code == 404, r.text
        r = await c.post(
            "/api/v1/goals",
            json={"tenant_id": "tenant-a", "goal": "steal"},
            headers=bearer(other.key),
        )
        assert r.status_code == 403 and r.json()["type"].endswith("/tenant-mismatch")
        assert (await c.get("/api/v1/keys", headers=bearer(admin.key))).status_code == 200


async def test_a_concurrent_burst_never_exceeds_the_rate_limit(
    stack: StackConfig, env: dict[str, str], admin: CliKey, logs: Path
) -> None:
    limited = {**env, "OMNIHUB_RATE_LIMIT_PER_MINUTE": "5"}
    with running_api(limited, logs) as url:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            answers = await asyncio.gather(
                *(c.get("/api/v1/keys", headers=bearer(admin.key)) for _ in range(20))
            )
    codes = sorted(a.status_code for a in answers)
    assert codes.count(200) <= 5 and set(codes) <= {200, 429}, codes
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) >= 15
    for r in refused:
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-limit"] == "5" and r.headers["ratelimit-remaining"] == "0"
        assert r.json()["type"].endswith("/rate-limited")


def test_an_oversize_body_is_refused_before_it_is_sent(api: str, admin: CliKey) -> None:
    host = urlparse(api)
    with socket.create_connection((host.hostname, host.port), timeout=30) as s:
        head = (
            f"POST /api/v1/goals HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {admin.key}\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n"
        )
        s.sendall(head.encode() + b"{" + b" " * 1024)  # 1 KB of a declared 50 MB
        received = b""
        while chunk := s.recv(65536):  # the server answers and closes without reading on
            received += chunk
        answer = received.decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "body-too-large" in answer


async def test_the_goals_kill_switch_refuses_new_goals_within_seconds(
    api: str, env: dict[str, str], admin: CliKey, platform: CliKey, logs: Path
) -> None:
    redis = Redis.from_url(env["OMNIHUB_REDIS_URL"])
    switch = "/api/v1/admin/kill-switches/goals.create"
    goal = {"goal": "x"}
    # A second API process, whose cached "switched on" answer predates the toggle: once
    # the toggle says applied, no process may still accept goals (the cache has expired).
    with running_api(env, logs) as other:
        async with (
            httpx.AsyncClient(base_url=api, timeout=30) as c,
            httpx.AsyncClient(base_url=other, timeout=30) as o,
        ):
            assert (
                await o.post("/api/v1/goals", json=goal, headers=bearer(admin.key))
            ).status_code == 202
            try:
                r = await c.put(
                    switch,
                    json={"enabled": False, "reason": "incident 42"},
                    headers=bearer(platform.key),
                )
                assert r.status_code == 200 and r.json()["applied"] is True, r.text
                assert await redis.get("omnihub:killswitch:goals.create") == b"1"
                for client in (c, o):
                    r = await client.post("/api/v1/goals", json=goal, headers=bearer(admin.key))
                    assert r.status_code == 503 and r.json()["type"].endswith("/feature-disabled")
                r = await c.put(
                    switch, json={"enabled": False, "reason": "x"}, headers=bearer(admin.key)
                )
                assert r.status_code == 403  # a tenant admin cannot switch platform features
            finally:
                r = await c.put(
                    switch,
                    json={"enabled": True, "reason": "resolved"},
                    headers=bearer(platform.key),
                )
                await redis.aclose()
            assert r.json()["applied"] is True
            for client in (c, o):
                r = await client.post("/api/v1/goals", json=goal, headers=bearer(admin.key))
                assert r.status_code == 202


async def audit_of(env: dict[str, str], tenant: str, want: set[tuple[str, str]]) -> list[Any]:
    """tenant's chained audit records, once every (category, outcome) in ``want`` is there."""
    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    topic = f"{env['OMNIHUB_TOPIC_PREFIX']}.audit.v1"
    for _ in range(60):
        found = [
            rec
            async for rec in read_log(env["OMNIHUB_KAFKA_BOOTSTRAP"], codec, [topic])
            if isinstance(rec.event, AuditRecorded) and rec.event.envelope.tenant_id == tenant
        ]
        if want <= {(r.event.category, r.event.outcome) for r in found}:
            return found
        await asyncio.sleep(1)
    raise AssertionError(f"audit records {want} never appeared for {tenant}")


async def test_the_audit_chain_verifies_and_a_forged_record_is_found(
    api: str, env: dict[str, str], admin: CliKey
) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:  # one of each decision
        forged_key = admin.key[:-4] + ("AAAA" if not admin.key.endswith("AAAA") else "BBBB")
        assert (await c.get("/api/v1/keys", headers=bearer(forged_key))).status_code == 401
    records = await audit_of(
        env,
        "tenant-a",
        {
            ("authn", "failure"),
            ("authn", "success"),
            ("authz", "denied"),
            ("key_lifecycle", "success"),
        },
    )
    actions = {(r.event.category, r.event.action) for r in records}
    assert {
        ("key_lifecycle", "create"),
        ("key_lifecycle", "rotate"),
        ("key_lifecycle", "revoke"),
    } <= actions
    ok = omnihub(env, "audit", "verify", "--tenant", "tenant-a")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("tenant-a: ok")
    doc = json.loads(omnihub(env, "audit", "verify", "--tenant", "tenant-a", "--json").stdout)
    head = doc["tenants"]["tenant-a"]["head"]
    assert doc["ok"] and len(head["hash"]) == 64 and head["hash"] in ok.stdout  # full hash
    unknown = omnihub(env, "audit", "verify", "--tenant", "no-such-tenant")
    assert unknown.returncode == 1 and "no audit records" in unknown.stderr

    # An attacker with write access to the topic appends a doctored copy of a record,
    # rehashed so the record on its own looks consistent.
    victim = records[len(records) // 2].event
    doctored = replace(victim, outcome="success", details={"reason": "nothing to see"}, hash="")
    doctored = replace(doctored, hash=compute_hash(doctored))
    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    producer = AIOKafkaProducer(bootstrap_servers=env["OMNIHUB_KAFKA_BOOTSTRAP"])
    await producer.start()
    try:
        meta = await producer.send_and_wait(
            f"{env['OMNIHUB_TOPIC_PREFIX']}.audit.v1",
            codec.encode(doctored),
            key=b"audit-tenant-a",
            headers=[("event_type", b"audit_recorded")],
        )
    finally:
        await producer.stop()
    bad = omnihub(env, "audit", "verify", "--tenant", "tenant-a")
    assert bad.returncode == 1, bad.stdout
    assert f"BROKEN at sequence {victim.sequence}" in bad.stdout
    assert f"@{meta.offset})" in bad.stdout


async def test_keys_list_shows_each_keys_last_use(api: str, env: dict[str, str]) -> None:
    used, idle = cli_key(env, "tenant-lu", "runs:read"), cli_key(env, "tenant-lu", "runs:read")
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        for _ in range(3):  # one write a minute per key, however many requests
            assert (await c.get("/api/v1/runs", headers=bearer(used.key))).status_code == 200
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    for _ in range(50):  # the write is in the background
        done = omnihub(env, "keys", "list", "--tenant", "tenant-lu")
        assert done.returncode == 0, done.stderr
        rows = {line.split()[0]: line for line in done.stdout.splitlines()[1:]}
        if today in rows[used.key_id]:
            break
        await asyncio.sleep(0.2)
    header = done.stdout.splitlines()[0]
    assert header.split() == ["KEY_ID", "KEY", "SCOPES", "STATE", "LAST_USED", "NAME"]
    column = header.index("LAST_USED")
    assert rows[used.key_id][column:].startswith(today)
    assert rows[idle.key_id][column:].startswith("never")


async def test_a_key_made_as_someone_else_is_audited_with_the_os_user(
    api: str, env: dict[str, str]
) -> None:
    from apps.commands.operator import os_user

    done = omnihub(env, "keys", "create", "--tenant", "tenant-as", "--scopes", "runs:read",
                   "--as", "alice")  # fmt: skip
    assert done.returncode == 0, done.stderr
    fields = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
    resource = f"api_key:{fields['key_id'].strip()}"
    records = await audit_of(env, "tenant-as", {("key_lifecycle", "success")})
    [created] = [r.event for r in records if r.event.resource == resource]
    assert created.subject == f"user:alice (os user {os_user()})"
