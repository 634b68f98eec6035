"""The audit log for auditors, end to end: real API, gateway processor and projector.

- Retention: records older than the tier's retention expire at a chained checkpoint;
  what remains verifies from it (API, log, export), and tampering after it still fails.
- The export verifies with the standard-library script, and an edited line does not.
- ``GET /api/v1/audit`` pages with an opaque cursor, filters, refuses a bad cursor.
- The platform chain: a kill switch toggled with one tenant's key is read and verified
  by another tenant's auditor.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from infra.launch import omnihub_argv, running, running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from projections.migrate import quote_ident
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, omnihub, running_processor

VERIFIER = REPO_ROOT / "examples" / "verify_audit_export.py"


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(stack, OMNIHUB_RATE_LIMIT_PER_MINUTE="100000")


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("audit-log")
    projector = omnihub_argv("projector", "run")
    with (
        running_processor(env, logs),
        running(projector, env, logs / "projector.log", grace_s=30),
        running_api(env, logs) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def admin(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "tenant-a", "admin")


async def audit(api: str, key: CliKey, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        return await c.get(
            "/api/v1/audit", params=params, headers={"Authorization": f"Bearer {key.key}"}
        )


async def page_until(api: str, key: CliKey, done: Any, **params: Any) -> dict[str, Any]:
    """The first answer whose body satisfies ``done`` (the chainer and projector lag)."""
    for _ in range(120):
        r = await audit(api, key, **params)
        assert r.status_code == 200, r.text
        if done(r.json()):
            return dict(r.json())
        await asyncio.sleep(0.5)
    raise AssertionError(f"never: {r.json()}")


def verify_file(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", str(VERIFIER), str(path)], capture_output=True, text=True
    )


async def test_expired_records_leave_a_checkpoint_that_what_remains_verifies_from(
    api: str, env: dict[str, str], admin: CliKey, tmp_path: Path
) -> None:
    await page_until(api, admin, lambda b: len(b["items"]) >= 3, limit=500)
    cut = datetime.now(UTC)
    await asyncio.sleep(1.5)  # records after the cut: this test's own authentications
    body = await page_until(
        api, admin, lambda b: datetime.fromisoformat(b["items"][0]["occurred_at"]) > cut,
        limit=500,
    )  # fmt: skip
    old = [i["sequence"] for i in body["items"] if datetime.fromisoformat(i["occurred_at"]) < cut]
    through = max(old)

    now = (cut + timedelta(days=90)).isoformat()  # tier unknown: the 90-day default
    done = omnihub(env, "audit", "expire", "--tenant", "tenant-a", "--now", now)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"tenant-a: expires sequences up to {through} " in done.stdout
    assert "tier default, 90 days" in done.stdout  # no subscription, no membership

    body = await page_until(
        api, admin, lambda b: b["verification"]["anchor"] == "checkpoint", limit=500
    )
    seqs = [i["sequence"] for i in body["items"]]
    assert min(seqs) == through + 1 and seqs == sorted(seqs, reverse=True)
    checkpoint = next(i for i in body["items"] if i["category"] == "retention")
    assert checkpoint["details"]["through_sequence"] == str(through)
    assert body["verification"]["ok"] is True, body["verification"]

    logged = omnihub(env, "audit", "verify", "--tenant", "tenant-a")
    assert logged.returncode == 0, logged.stdout  # the log keeps the longest tier's

    for fmt in ("jsonl", "csv"):
        out = tmp_path / f"a.{fmt}"
        exported = omnihub(env, "audit", "export", "--tenant", "tenant-a", "--format", fmt,
                           "-o", str(out), "--from", cut.isoformat())  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        checked = verify_file(out)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"tenant-a: ok, sequences {through + 1}-" in checked.stdout
        assert "after the retention checkpoint at sequence" in checked.stdout
    lines = (tmp_path / "a.jsonl").read_text().splitlines()
    edited = json.loads(lines[1])
    edited["subject"] = "someone else"
    lines[1] = json.dumps(edited)
    (tmp_path / "edited.jsonl").write_text("\n".join(lines) + "\n")
    broken = verify_file(tmp_path / "edited.jsonl")
    assert broken.returncode == 1 and "line 2" in broken.stdout

    # Someone with write access to the read model rewrites a record after the checkpoint.
    conn = await asyncpg.connect(env["OMNIHUB_POSTGRES_DSN"])
    try:
        await conn.execute(
            f"UPDATE {quote_ident(env['OMNIHUB_PROJECTIONS_SCHEMA'])}.audit_log"
            " SET outcome = 'forged' WHERE tenant_id = 'tenant-a' AND sequence = $1",
            through + 1,
        )
    finally:
        await conn.close()
    r = await audit(api, admin, limit=500)
    v = r.json()["verification"]
    assert v["ok"] is False and v["broken"]["sequence"] == through + 1, v
    assert v["broken"]["reason"] == "hash"


async def test_pages_follow_an_opaque_cursor_and_filters_apply(api: str, admin: CliKey) -> None:
    first = await page_until(api, admin, lambda b: b["next_cursor"] is not None, limit=2)
    assert len(first["items"]) == 2 and first["verification"]["ok"] is True
    second = (await audit(api, admin, limit=2, cursor=first["next_cursor"])).json()
    assert max(i["sequence"] for i in second["items"]) < first["items"][-1]["sequence"]
    authn = (await audit(api, admin, category="authn", outcome="success")).json()
    assert authn["items"] and {(i["category"], i["outcome"]) for i in authn["items"]} == {
        ("authn", "success")
    }
    later = await audit(api, admin, since=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    assert later.json()["items"] == [] and later.json()["verification"]["anchor"] == "empty"
    for cursor in ("not-a-cursor", first["next_cursor"][:-3] + "zzz"):
        bad = await audit(api, admin, cursor=cursor)
        assert bad.status_code == 400 and bad.json()["type"].endswith("/bad-cursor"), bad.text
    platform = await audit(api, admin, chain="platform", cursor=first["next_cursor"])
    assert platform.status_code == 400  # another chain's cursor


async def test_a_tenants_kill_switch_is_in_the_platform_chain_other_tenants_read(
    api: str, env: dict[str, str], tmp_path: Path
) -> None:
    ops = cli_key(env, "ops", "platform:killswitch")
    auditor_b = cli_key(env, "tenant-b", "audit:read")
    reason = f"platform audit {time.time_ns()}"
    async with httpx.AsyncClient(base_url=api, timeout=30) as c:
        r = await c.put(
            "/api/v1/admin/kill-switches/llm_planner",
            json={"enabled": True, "reason": reason},
            headers={"Authorization": f"Bearer {ops.key}"},
        )
    assert r.status_code == 200, r.text
    body = await page_until(
        api, auditor_b,
        lambda b: any(i["details"].get("reason") == reason for i in b["items"]),
        chain="platform", category="kill_switch",
    )  # fmt: skip
    item = next(i for i in body["items"] if i["details"]["reason"] == reason)
    assert item["details"]["tenant"] == "ops" and item["resource"] == "feature:llm_planner"
    assert item["tenant_id"] == "*" and body["chain"] == "platform"
    assert body["verification"]["ok"] is True, body["verification"]
    async with httpx.AsyncClient(base_url=api, timeout=60) as c:
        logged = await c.get(
            "/api/v1/audit/verify",
            params={"chain": "platform"},
            headers={"Authorization": f"Bearer {auditor_b.key}"},
        )
    assert logged.status_code == 200 and logged.json()["ok"] is True, logged.text
    assert logged.json()["records"] >= 1
    mine = (await audit(api, auditor_b, category="kill_switch")).json()
    assert mine["items"] == []  # tenant-b's own chain: it toggled nothing

    verified = omnihub(env, "audit", "verify", "--platform")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("platform: ok")
    out = tmp_path / "platform.jsonl"
    exported = omnihub(env, "audit", "export", "--platform", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    checked = verify_file(out)
    assert checked.returncode == 0 and checked.stdout.startswith("*: ok"), checked.stdout


async def test_a_tenants_tier_sets_its_retention(api: str, env: dict[str, str]) -> None:
    cli_key(env, "tenant-c", "read")  # a chained record: the key's creation
    set_tier = omnihub(env, "tenants", "set-tier", "--tenant", "tenant-c", "--tier", "pro")
    assert set_tier.returncode == 0, set_tier.stdout + set_tier.stderr

    def dry_run(days: int) -> str:
        at = (datetime.now(UTC) + timedelta(days=days)).isoformat()
        args = ("audit", "expire", "--tenant", "tenant-c", "--dry-run", "--now", at)
        done = omnihub(env, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    for _ in range(60):  # the gateway folds the subscription, the projector the records
        after = dry_run(366)
        if "tier pro, 365 days" in after and "would expire" in after:
            break
        await asyncio.sleep(0.5)
    assert after.startswith("tenant-c: would expire sequences up to"), after
    within = dry_run(100)
    assert within.startswith("tenant-c: nothing to expire (tier pro, 365 days)"), within
