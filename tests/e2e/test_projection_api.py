"""HTTP in, Kafka through, projections out: the dashboard read API over a real projector."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain import ids
from domain.events import ApprovalRequested, Event
from infra.launch import omnihub_argv, running, running_api
from infra.stack import StackConfig
from omnihub.settings import Settings
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.integration.test_projection_store import T0, append, story


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
        OMNIHUB_PROJECTIONS_REDIS_PREFIX=f"e2e{uuid.uuid4().hex[:8]}",
    )


@pytest.fixture(scope="module")
def projector(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    log = tmp_path_factory.mktemp("projector") / "projector.log"
    with running(omnihub_argv("projector", "run"), env, log, grace_s=30):
        yield


@pytest.fixture(scope="module")
def api(
    env: dict[str, str], projector: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("projection-api")
    with running_processor(env, logs), running_api(env, logs) as url:
        yield url


@pytest.fixture(scope="module")
def keys(api: str, env: dict[str, str]) -> dict[str, CliKey]:
    return {t: cli_key(env, t, "read") for t in ("tenant-a", "tenant-b")}


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(
        kafka_bootstrap=env["OMNIHUB_KAFKA_BOOTSTRAP"],
        topic_prefix=env["OMNIHUB_TOPIC_PREFIX"],
        topic_partitions=3,
    )


async def get(url: str, key: CliKey, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await client.get(path, params=params, headers={"Authorization": f"Bearer {key.key}"})


async def poll(url: str, key: CliKey, path: str, ok: Any, **params: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        r = await get(url, key, path, **params)
        if r.status_code == 200 and ok(r.json()):
            body: dict[str, Any] = r.json()
            return body
        assert time.monotonic() < deadline, f"{path}: {r.status_code} {r.text[-1500:]}"
        await asyncio.sleep(0.5)


async def test_read_api_serves_runs_timeline_approvals_and_kpis(
    api: str, keys: dict[str, CliKey], env: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    runs = [story(f"run-{tag}-{i}", "tenant-a", i % 5) for i in range(5)]
    waiting = f"run-{tag}-wait"
    pending = ApprovalRequested(
        ids.envelope(
            ApprovalRequested,
            run_id=waiting,
            tenant_id="tenant-a",
            actor="saga",
            correlation_id=waiting,
            discriminator=("a",),
            occurred_at=T0 + timedelta(minutes=5),
        ),
        f"ap-{tag}",
        "s1",
        "wire_money",
        0.95,
        ("amount over limit",),
        T0 + timedelta(hours=2),
    )
    other = story(f"run-{tag}-b", "tenant-b", 0)
    events: list[Event] = [e for r in runs for e in r] + [
        *story(waiting, "tenant-a", 0)[:4],
        pending,
        *other,
    ]
    await append(settings_of(env), events)
    a, b = keys["tenant-a"], keys["tenant-b"]

    body = await poll(api, a, "/api/v1/runs", lambda j: len(j["items"]) == 6, limit=100)
    assert body["freshness"]["caught_up"] is not None
    assert {r["tenant_id"] for r in body["items"]} == {"tenant-a"}

    seen: list[str] = []
    cursor = None
    while True:
        page = (
            await get(api, a, "/api/v1/runs", limit=2, **({"cursor": cursor} if cursor else {}))
        ).json()
        seen += [r["run_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6

    failed = (await get(api, a, "/api/v1/runs", status="failed")).json()["items"]
    assert [r["run_id"] for r in failed] == [f"run-{tag}-3"]

    done = await poll(
        api, a, f"/api/v1/runs/run-{tag}-0", lambda j: j["freshness"]["caught_up"] is True
    )
    assert done["status"] == "completed" and done["duration_ms"] is not None
    assert [t["seq"] for t in done["timeline"]] == list(range(1, len(runs[0]) + 1))
    assert done["timeline"][0]["event_type"] == "goal_received"

    missing = await get(api, a, "/api/v1/runs/run-nope")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert (await get(api, b, f"/api/v1/runs/run-{tag}-0")).status_code == 404

    queue = (await get(api, a, "/api/v1/approvals")).json()["items"]
    assert [(q["approval_id"], q["status"], q["reasons"]) for q in queue] == [
        (f"ap-{tag}", "pending", ["amount over limit"])
    ]
    assert (await get(api, b, "/api/v1/approvals")).json()["items"] == []
    assert (await get(api, a, "/api/v1/approvals/ap-nope")).status_code == 404

    kpis = (await get(api, a, "/api/v1/kpis")).json()["items"]
    assert sum(k["goals"] for k in kpis) == 6 and sum(k["failures"] for k in kpis) == 1
    # The plan cache's effect: one run's plan came from the cache, the rest from the
    # rules (which cost no model call).
    assert sum(k["cache_hits"] for k in kpis) == 1 and sum(k["model_calls"] for k in kpis) == 0
    assert all(k["saved_model_calls"] == k["cache_hits"] for k in kpis)
    assert all(
        k["cache_hit_rate"] == round(k["cache_hits"] / k["plans"], 4) for k in kpis if k["plans"]
    )
    finished = [k for k in kpis if k["runs_finished"]]
    assert finished and all(k["p50"] is not None and k["p95"] >= k["p50"] for k in finished)


async def test_live_view_serves_counters_and_newest_runs_from_redis(
    api: str, keys: dict[str, CliKey], env: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:6]
    tenant = f"live-{tag}"
    key = await asyncio.to_thread(cli_key, env, tenant, "read")
    now = datetime.now(UTC).replace(microsecond=0)
    done = [
        story(f"live-{tag}-{i}", tenant, 0, at=now - timedelta(minutes=5 - i)) for i in range(3)
    ]
    failed = story(f"live-{tag}-f", tenant, 3, at=now - timedelta(seconds=30))
    active = story(f"live-{tag}-r", tenant, 0, at=now)[:4]  # a step started, not finished
    await append(settings_of(env), [*(e for r in done for e in r), *failed, *active])

    body = await poll(
        api,
        key,
        "/api/v1/live",
        lambda j: j["counters"]["goals"] == 5 and j["freshness"]["caught_up"] is True,
    )
    counters = body["counters"]
    assert (counters["completions"], counters["failures"], counters["active"]) == (3, 1, 1)
    assert counters["compensations"] == 1
    assert [(r["run_id"], r["status"]) for r in body["recent"]] == [
        (f"live-{tag}-r", "running"),
        (f"live-{tag}-f", "failed"),
        *((f"live-{tag}-{i}", "completed") for i in (2, 1, 0)),
    ]
    assert body["recent"][0]["ended_at"] is None and body["recent"][1]["ended_at"] is not None
    assert body["freshness"]["last_event_time"] is not None

    newest = (await get(api, key, "/api/v1/live", limit=2)).json()["recent"]
    assert [r["run_id"] for r in newest] == [f"live-{tag}-r", f"live-{tag}-f"]
    others = (await get(api, keys["tenant-b"], "/api/v1/live", limit=200)).json()
    assert not any(r["run_id"].startswith(f"live-{tag}") for r in others["recent"])
    assert (await get(api, key, "/api/v1/live", limit=0)).status_code == 422
