"""Trusted devices end to end: real API and gateway processor on the test stack.

A tenant admin registers a device (its Ed25519 public key); requests the device signs
are accepted with its scopes while it is registered, and refused (401 problem details,
with an audit fact) once it is revoked. A replayed nonce, a stale timestamp, a changed
body and another key's signature are refused too. Every change is an event.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain.device_signature import canonical, public_key_text
from domain.events import AuditFactObserved, DeviceRegistered, DeviceRevoked, Event
from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor

TENANT = f"dev-{uuid.uuid4().hex[:8]}"
PHONE = Ed25519PrivateKey.generate()
STRANGER = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(stack, OMNIHUB_RATE_LIMIT_PER_MINUTE="100000")


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("devices")
    with running_processor(env, logs), running_api(env, logs) as url:
        yield url


@pytest.fixture(scope="module")
def admin(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, TENANT, "admin")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def public(key: Ed25519PrivateKey) -> str:
    return public_key_text(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def signed_headers(
    key: Ed25519PrivateKey,
    device_id: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    at: int | None = None,
    nonce: str | None = None,
    signed_body: bytes | None = None,
) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    nonce = nonce or uuid.uuid4().hex
    text = canonical(
        method, path, "", stamp, nonce, device_id, body if signed_body is None else signed_body
    )
    signature = base64.urlsafe_b64encode(key.sign(text)).rstrip(b"=").decode()
    return {
        "X-OmniHub-Device": device_id,
        "X-OmniHub-Timestamp": str(stamp),
        "X-OmniHub-Nonce": nonce,
        "X-OmniHub-Signature": signature,
    }


async def control_events(env: dict[str, str]) -> list[Event]:
    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    topic = f"{env['OMNIHUB_TOPIC_PREFIX']}.control.v1"
    return [rec.event async for rec in read_log(env["OMNIHUB_KAFKA_BOOTSTRAP"], codec, [topic])]


async def audited(env: dict[str, str], subject: str, reason: str) -> AuditFactObserved:
    for _ in range(40):
        for e in await control_events(env):
            if (
                isinstance(e, AuditFactObserved)
                and e.subject == subject
                and e.details.get("reason") == reason
            ):
                return e
        await asyncio.sleep(0.5)
    raise AssertionError(f"no audit fact for {subject} refused as {reason}")


async def register(c: httpx.AsyncClient, admin: CliKey, scopes: list[str]) -> str:
    body = {"public_key": public(PHONE), "name": "alice's phone", "scopes": scopes}
    r = await c.post("/api/v1/devices", json=body, headers=bearer(admin.key))
    assert r.status_code == 201, r.text
    assert r.json()["active"] is True and r.json()["scopes"] == sorted(scopes)
    device_id: str = r.json()["device_id"]
    return device_id


async def test_a_device_is_trusted_while_registered_and_refused_once_revoked(
    api: str, env: dict[str, str], admin: CliKey
) -> None:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        device = await register(c, admin, ["runs:read"])
        path = "/api/v1/runs"
        ok = await c.get(path, headers=signed_headers(PHONE, device, "GET", path))
        assert ok.status_code == 200, ok.text
        # Its scopes, not more: registering devices is the admin's.
        refused = await c.get(
            "/api/v1/devices", headers=signed_headers(PHONE, device, "GET", "/api/v1/devices")
        )
        assert refused.status_code == 403, refused.text
        listed = await c.get("/api/v1/devices", headers=bearer(admin.key))
        assert [(d["device_id"], d["revoked_at"]) for d in listed.json()] == [(device, None)]

        r = await c.delete(f"/api/v1/devices/{device}?reason=lost", headers=bearer(admin.key))
        assert r.status_code == 200 and r.json()["revoked_at"] is not None, r.text
        after = await c.get(path, headers=signed_headers(PHONE, device, "GET", path))
    assert after.status_code == 401
    assert after.headers["content-type"] == "application/problem+json"
    assert after.json()["reason"] == "revoked"
    fact = await audited(env, f"device:{device}", "revoked")
    assert (fact.envelope.tenant_id, fact.outcome) == (TENANT, "failure")
    changes = [
        (type(e).__name__, e.device_id)
        for e in await control_events(env)
        if isinstance(e, DeviceRegistered | DeviceRevoked) and e.device_id == device
    ]
    assert changes == [("DeviceRegistered", device), ("DeviceRevoked", device)]


async def test_replayed_stale_tampered_and_foreign_signatures_are_refused(
    api: str, env: dict[str, str], admin: CliKey
) -> None:
    path = "/api/v1/runs"
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        device = await register(c, admin, ["read", "goals:write"])
        once = signed_headers(PHONE, device, "GET", path)
        assert (await c.get(path, headers=once)).status_code == 200
        replayed = await c.get(path, headers=once)
        stale = await c.get(
            path, headers=signed_headers(PHONE, device, "GET", path, at=int(time.time()) - 3600)
        )
        foreign = await c.get(path, headers=signed_headers(STRANGER, device, "GET", path))
        goal = b'{"goal": "Echo hello"}'
        tampered = await c.post(
            "/api/v1/goals",
            content=goal,
            headers={
                "content-type": "application/json",
                **signed_headers(PHONE, device, "POST", "/api/v1/goals", goal, signed_body=b"{}"),
            },
        )
        unknown = await c.get(path, headers=signed_headers(PHONE, "no-such-device", "GET", path))
    assert [
        (r.status_code, r.json()["reason"]) for r in (replayed, stale, foreign, tampered, unknown)
    ] == [
        (401, "replayed"),
        (401, "expired"),
        (401, "bad_signature"),
        (401, "bad_signature"),
        (401, "unknown"),
    ]
    await audited(env, f"device:{device}", "replayed")


async def test_a_bad_public_key_or_an_escalation_is_refused(
    api: str, admin: CliKey, env: dict[str, str]
) -> None:
    reader = cli_key(env, TENANT, "read")
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        bad = await c.post(
            "/api/v1/devices",
            json={"public_key": "A" * 43 + "!", "name": "x"},
            headers=bearer(admin.key),
        )
        not_admin = await c.post(
            "/api/v1/devices",
            json={"public_key": public(PHONE), "name": "x"},
            headers=bearer(reader.key),
        )
        decide = await c.post(
            "/api/v1/devices",
            json={"public_key": public(PHONE), "name": "x", "scopes": ["platform:killswitch"]},
            headers=bearer(admin.key),
        )
    assert bad.status_code == 422
    assert not_admin.status_code == 403
    assert decide.status_code == 403 and decide.json()["type"].endswith("scope-escalation")
