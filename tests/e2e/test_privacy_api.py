"""Erasure from a fresh stack, HTTP in: a goal naming a data subject is read back in the
clear, the admin route (and the CLI) erase it, and the read API then says erased."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from infra.launch import omnihub_argv, running, running_api
from infra.stack import StackConfig
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, omnihub, running_processor
from tests.e2e.test_projection_api import poll


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
