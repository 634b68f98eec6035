"""One goal, one trace; every process serves its metrics.

Real processes on the test stack (the API through ``omnihub api run``, the gateway
processor, the projector, the saga bridge and a worker), each writing its spans to the
span files of a state folder of this test's own. A posted goal must come back from
``omnihub trace RUN`` as one trace holding the API request, the append, the bridge, the
workflow, each activity and the projection; and each process's ``/metrics`` must hold
the families it owns.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.launch import free_port, omnihub_argv, running, wait_for_port
from infra.stack import StackConfig
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, omnihub
from tests.e2e.test_saga_e2e import Projections, post_goal
from tests.saga_support import unique

PROCESSES = ("gateway", "projector", "worker", "saga-bridge")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("observability-state")


@pytest.fixture(scope="module")
def env(stack: StackConfig, state_dir: Path) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_TEMPORAL_TASK_QUEUE=unique("observe"),
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
        OMNIHUB_STATE_DIR=str(state_dir),
        OMNIHUB_LOG_FORMAT="json",
        OTEL_BSP_SCHEDULE_DELAY="200",  # export spans within 0.2 s, not 5 s
    )


@pytest.fixture(scope="module")
def ports() -> dict[str, int]:
    return {name: free_port() for name in (*PROCESSES, "api")}


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("observability-logs")


@pytest.fixture(scope="module")
def api(env: dict[str, str], ports: dict[str, int], logs: Path) -> Iterator[str]:
    with ExitStack() as stack:
        for name in PROCESSES:
            own = {**env, "OMNIHUB_METRICS_PORT": str(ports[name])}
            stack.enter_context(running(omnihub_argv(name, "run"), own, logs / f"{name}.log"))
        argv = omnihub_argv("api", "run", "--host", "127.0.0.1", "--port", str(ports["api"]))
        proc = stack.enter_context(running(argv, env, logs / "api.log"))
        wait_for_port(ports["api"], proc, logs / "api.log", timeout_s=60)
        yield f"http://127.0.0.1:{ports['api']}"


@pytest.fixture(scope="module")
def key(api: str, env: dict[str, str]) -> CliKey:
    return cli_key(env, "observe", "write")


async def _trace(env: dict[str, str], run_id: str) -> list[dict[str, Any]]:
    done = await asyncio.to_thread(omnihub, env, "trace", run_id, "--json")
    if done.returncode != 0:
        return []
    return [json.loads(line) for line in done.stdout.splitlines()]


async def _spans_of(env: dict[str, str], run_id: str, wait_s: float = 30) -> list[dict[str, Any]]:
    """The run's trace once it shows everything (spans are exported in batches)."""
    deadline = time.monotonic() + wait_s
    while True:
        spans = await _trace(env, run_id)
        if not _missing(spans) or time.monotonic() > deadline:
            return spans
        await asyncio.sleep(0.5)


def _missing(spans: list[dict[str, Any]]) -> list[str]:
    """What the goal's trace must show and does not (yet)."""
    names = {(s["service"], s["name"]) for s in spans}
    expected = [
        ("api", "POST /api/v1/goals"),
        ("api", "append"),
        ("saga-bridge", "saga-bridge StartRun"),
        ("saga-bridge", "StartWorkflow:AgentWorkflow"),
        ("worker", "RunWorkflow:AgentWorkflow"),
        *(
            ("worker", f"RunActivity:{a}")
            for a in ("assess_goal", "make_plan", "run_step", "finish_run")
        ),
        ("worker", "append"),
    ]
    gaps = [f"{service} {name}" for service, name in expected if (service, name) not in names]
    if not any(s["service"] == "projector" and s["name"].startswith("projector/") for s in spans):
        gaps.append("projector apply")
    return gaps


async def test_one_goal_yields_one_trace_from_the_request_to_the_projection(
    api: str, key: CliKey, env: dict[str, str], logs: Path
) -> None:
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers={"Authorization": f"Bearer {key.key}"}
    ) as client:
        run_id = await post_goal(client, "say hello then upper world")
    await Projections(env).until(
        "SELECT 1 FROM runs WHERE run_id = $1 AND status = 'completed'", run_id
    )
    spans = await _spans_of(env, run_id)
    assert _missing(spans) == [], [(s["service"], s["name"]) for s in spans]
    # One trace: every span not hung in by a link shares the request's trace id.
    own = [s for s in spans if not s["linked"]]
    assert len({s["trace_id"] for s in own}) == 1
    root = spans[0]
    assert (root["depth"], root["name"], root["parent_id"]) == (0, "POST /api/v1/goals", None)
    # Each activity's appends descend from it: the worker's appends are not roots.
    appends = [s for s in own if s["service"] == "worker" and s["name"] == "append"]
    assert appends and all(s["depth"] > 1 for s in appends)
    printed = await asyncio.to_thread(omnihub, env, "trace", run_id)
    assert printed.returncode == 0 and "RunWorkflow:AgentWorkflow" in printed.stdout
    # The bridge's log line about this run is JSON and names the run's trace.
    lines = [
        json.loads(x) for x in (logs / "saga-bridge.log").read_text().splitlines() if x[:1] == "{"
    ]
    started = [
        x for x in lines if x.get("run_id") == run_id and x["message"] == "StartRun: started"
    ]
    assert started and started[0]["trace_id"] == root["trace_id"]
    assert started[0]["tenant_id"] and started[0]["level"] == "INFO"


# What each process must serve once a goal went through (metric_names.py, METRICS.md).
SERVED = {
    "api": (
        'omnihub_http_requests_total{route="/api/v1/goals",status="202"}',
        'omnihub_http_request_duration_seconds_bucket{le="0.005",route="/api/v1/goals"}',
        "omnihub_appends_total{",
        "omnihub_append_duration_seconds_count{",
    ),
    "projector": (
        'omnihub_events_folded_total{consumer="projector"}',
        'omnihub_consumer_lag{consumer="projector"',
        "omnihub_approvals_waiting ",
    ),
    "saga-bridge": ('omnihub_events_folded_total{consumer="saga-bridge"}',),
    "worker": (
        'omnihub_workflow_duration_seconds_count{outcome="completed",workflow="AgentWorkflow"}',
        'omnihub_activity_duration_seconds_count{activity="run_step",outcome="completed"}',
        "omnihub_appends_total{",
    ),
    "gateway": ("omnihub_events_folded_total{",),
}


async def test_every_process_serves_its_metrics(
    api: str, key: CliKey, env: dict[str, str], ports: dict[str, int]
) -> None:
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers={"Authorization": f"Bearer {key.key}"}
    ) as client:
        run_id = await post_goal(client, "say hi then upper there")
    await Projections(env).until(
        "SELECT 1 FROM runs WHERE run_id = $1 AND status = 'completed'", run_id
    )
    async with httpx.AsyncClient(timeout=10) as http:
        for process, wanted in SERVED.items():
            # Lag is refreshed beside the consumer loop every 5 s: on a loaded machine the
            # first refresh can come after the run completed, so allow a few rounds.
            deadline = time.monotonic() + 30
            while True:
                r = await http.get(f"http://127.0.0.1:{ports[process]}/metrics")
                assert r.status_code == 200, process
                lacking = [w for w in wanted if w not in r.text]
                if not lacking or time.monotonic() > deadline:
                    break
                await asyncio.sleep(1.0)
            assert lacking == [], (process, lacking)
