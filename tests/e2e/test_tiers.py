"""Each entitlement refused on the free tier, then allowed after an upgrade, with no
restart: the real API, gateway processor, saga bridge and worker on the test stack.

A tenant starts free (no subscription). A refusal is problem details naming the
entitlement (429 for the rate limits, 402 for what a higher tier allows), recorded as an
``entitlement`` audit fact; ``omnihub tenants set-tier`` then lifts it within seconds.
The worker's LLM is a local fake that always proposes a six-step plan, so the saga's
entitlements show: free plans with the rules and refuses a six-step plan (the run fails
naming ``max_plan_steps``); starter plans with the model and runs six steps.
The in-flight limits are held by the same script as the rates
(tests/integration/test_ratelimit.py holds them against the real Redis).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from aiohttp import web

from domain.events import AuditFactObserved, PlanGenerated, RunCompleted, RunFailed
from infra.launch import running_api
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from omnihub.settings import Settings
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, omnihub, running_processor
from tests.saga_support import FakeOpenAI, RunTap, completion, omnihub_process, tapping, unique

SIX = " then ".join(f"say step {i}" for i in range(1, 7))  # the rules plan six steps
MODEL_PLAN = json.dumps(
    {
        "steps": [
            {"id": f"s{i}", "tool": "transform", "arguments": {"op": "upper", "value": f"v{i}"}}
            for i in range(1, 7)
        ]
    }
)


async def _model(payload: dict[str, Any]) -> web.StreamResponse:
    return completion(MODEL_PLAN, payload["model"])


class ModelThread:
    """The fake model on a loop of its own, alive for the whole module."""

    def __enter__(self) -> str:
        self.loop = asyncio.new_event_loop()
        self.fake = FakeOpenAI(_model)
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self.fake.start())
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert started.wait(30)
        return self.fake.base_url

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def model() -> Iterator[str]:
    with ModelThread() as url:
        yield url


@pytest.fixture(scope="module")
def env(stack: StackConfig, model: str) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_TEMPORAL_TASK_QUEUE=unique("tiers"),
        OMNIHUB_LLM_MODEL="openai/planner-test",
        OMNIHUB_LLM_API_BASE=model,
        OMNIHUB_LLM_API_KEY="test",
        OMNIHUB_PLAN_CACHE="disabled",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("tiers")
    with ExitStack() as stack:
        stack.enter_context(running_processor(env, logs))
        stack.enter_context(omnihub_process(env, logs / "worker.log", "worker", "run"))
        stack.enter_context(omnihub_process(env, logs / "bridge.log", "saga-bridge", "run"))
        yield stack.enter_context(running_api(env, logs))


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(
        kafka_bootstrap=env["OMNIHUB_KAFKA_BOOTSTRAP"],
        topic_prefix=env["OMNIHUB_TOPIC_PREFIX"],
        topic_partitions=3,
        # The tap opens sealed fields as a trusted consumer: with the processes' key store.
        projections_schema=env["OMNIHUB_PROJECTIONS_SCHEMA"],
    )


def bearer(key: CliKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}"}


def upgrade(env: dict[str, str], tenant: str, tier: str) -> float:
    """``omnihub tenants set-tier``; when it returned."""
    done = omnihub(env, "tenants", "set-tier", "--tenant", tenant, "--tier", tier)
    assert done.returncode == 0, done.stderr
    return time.monotonic()


async def allowed_again(send: Any, since: float, status: int = 200) -> httpx.Response:
    """``send()`` until it answers ``status``; within 10 s of ``since`` (no restart)."""
    while True:
        r: httpx.Response = await send()
        if r.status_code == status:
            assert time.monotonic() - since < 10, "the upgrade took too long"
            return r
        assert time.monotonic() - since < 10, r.text
        await asyncio.sleep(0.2)


async def denied_facts(env: dict[str, str], tenant: str) -> list[AuditFactObserved]:
    codec = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))
    topic = f"{env['OMNIHUB_TOPIC_PREFIX']}.control.v1"
    return [
        r.event
        async for r in read_log(env["OMNIHUB_KAFKA_BOOTSTRAP"], codec, [topic])
        if isinstance(r.event, AuditFactObserved)
        and r.event.envelope.tenant_id == tenant
        and r.event.category == "entitlement"
    ]


@pytest.fixture
async def client(api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api, timeout=60) as c:
        yield c


async def test_the_rate_per_key_and_per_tenant(client: httpx.AsyncClient, env: Any) -> None:
    tenant = unique("rate")
    a, b, c = (cli_key(env, tenant, "read") for _ in range(3))
    for key in (a, b):  # free: 30 a minute per key, 60 per tenant
        answers = [(await client.get("/api/v1/tenant", headers=bearer(key))) for _ in range(30)]
        assert {r.status_code for r in answers} == {200}
    over_key = await client.get("/api/v1/tenant", headers=bearer(a))
    assert over_key.status_code == 429
    assert over_key.json()["entitlement"] == "requests_per_minute_per_key"
    over_tenant = await client.get("/api/v1/tenant", headers=bearer(c))
    assert over_tenant.status_code == 429, over_tenant.text
    assert over_tenant.json()["entitlement"] == "requests_per_minute_per_tenant"
    assert over_tenant.json()["tier"] == "free"
    since = upgrade(env, tenant, "pro")
    r = await allowed_again(lambda: client.get("/api/v1/tenant", headers=bearer(a)), since)
    assert r.json()["tier"] == "pro" and r.headers["ratelimit-limit"] in {"300", "1200"}
    assert (await client.get("/api/v1/tenant", headers=bearer(c))).status_code == 200
    await asyncio.sleep(1)  # the background audit batch
    actions = {f.action for f in await denied_facts(env, tenant)}
    assert actions == {"requests_per_minute_per_key", "requests_per_minute_per_tenant"}


async def test_goals_per_month_and_the_approval_timeout(
    client: httpx.AsyncClient, env: Any
) -> None:
    tenant = unique("goals")
    key = cli_key(env, tenant, "write")
    batch = {"goals": [{"goal": "say hi"}] * 100}  # free: 100 goals a month
    r = await client.post("/api/v1/goals:batch", json=batch, headers=bearer(key))
    assert r.status_code == 207 and r.json()["accepted"] == 100, r.text
    over = await client.post("/api/v1/goals", json={"goal": "say hi"}, headers=bearer(key))
    assert over.status_code == 402, over.text
    assert (over.json()["entitlement"], over.json()["upgrade_to"]) == ("goals_per_month", "starter")
    day = {"goal": "say hi", "context": {"approval_timeout_s": "86400"}}
    long_wait = await client.post("/api/v1/goals", json=day, headers=bearer(key))
    assert long_wait.status_code == 402 and long_wait.json()["entitlement"] == "approval_timeout_s"
    since = upgrade(env, tenant, "starter")
    await allowed_again(
        lambda: client.post("/api/v1/goals", json=day, headers=bearer(key)), since, 202
    )
    actions = [f.action for f in await denied_facts(env, tenant)]
    assert {"goals_per_month", "approval_timeout_s"} <= set(actions)


async def test_plan_template_sharing(client: httpx.AsyncClient, env: Any) -> None:
    tenant = unique("share")
    admin = cli_key(env, tenant, "admin")
    body = {"template": "Book flight to {DESTINATION}", "shared_with": ["*"]}

    async def share() -> httpx.Response:
        return await client.put("/api/v1/plan-templates/sharing", json=body, headers=bearer(admin))

    refused = await share()
    assert refused.status_code == 402 and refused.json()["entitlement"] == "plan_template_sharing"
    since = upgrade(env, tenant, "pro")
    r = await allowed_again(share, since, 202)
    assert r.json()["shared_with"] == ["*"]


async def outcome(tap: RunTap, run_id: str) -> tuple[RunCompleted | RunFailed, list[Any]]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        events = list(tap.events[run_id])
        ended = [e for e in events if isinstance(e, RunCompleted | RunFailed)]
        if ended:
            return ended[0], events
        await asyncio.sleep(0.2)
    raise AssertionError(f"{run_id}: no end; saw {tap.types(run_id)}")


async def test_plan_steps_and_the_llm_planner(client: httpx.AsyncClient, env: Any) -> None:
    tenant = unique("saga")
    key = cli_key(env, tenant, "write")
    async with tapping(settings_of(env)) as tap:

        async def run(goal: str) -> tuple[RunCompleted | RunFailed, list[Any]]:
            r = await client.post("/api/v1/goals", json={"goal": goal}, headers=bearer(key))
            assert r.status_code == 202, r.text
            return await outcome(tap, r.json()["run_id"])

        failed, _ = await run(SIX)  # free: the rules plan six steps, five are allowed
        assert isinstance(failed, RunFailed), failed
        assert failed.reason.startswith("entitlement_exceeded: max_plan_steps:"), failed.reason
        assert "the free tier allows 5" in failed.reason
        done, events = await run("say hi")
        assert isinstance(done, RunCompleted)
        (plan,) = [e for e in events if isinstance(e, PlanGenerated)]
        assert plan.planner == "rules"  # free has no LLM planner
        upgrade(env, tenant, "starter")
        await asyncio.sleep(2.5)  # the bridge reads a tenant's facts at most once a second
        done, events = await run(SIX)
        assert isinstance(done, RunCompleted), done
        (plan,) = [e for e in events if isinstance(e, PlanGenerated)]
        assert (plan.planner, len(plan.steps)) == ("openai/planner-test", 6)
