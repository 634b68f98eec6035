"""Chaos: goals flow at a steady rate while every stream process and the worker are
killed with SIGKILL, several times each, and restarted.

Afterwards every accepted goal is in Kafka once and in the read API once, every run is
terminal, no step's effect is doubled, and the live and KPI counters equal the log.
Bounded: about 40 goals over about 40 seconds, eight kills, then at most three minutes
for the platform to settle. The figures are printed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from domain.events import GoalReceived, RunCompleted, RunFailed
from infra.launch import omnihub_argv, running_api, spawn, stop
from infra.stack import StackConfig
from omnihub.settings import Settings
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name
from tests.e2e.gateway_stack import cli_key, gateway_env
from tests.saga_support import unique

GOALS = 40
GOAL_EVERY_S = 1.0
KILLS = ("projector", "worker", "saga-bridge", "gateway") * 2
TERMINAL = {"completed", "failed", "cancelled"}
ARGS = {
    "projector": ("projector", "run"),
    "worker": ("worker", "run"),
    "saga-bridge": ("saga-bridge", "run"),
    "gateway": ("gateway", "run"),
}


class Platform:
    """The processes of one isolated platform, each restartable by name."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills: Counter[str] = Counter()

    def start(self, name: str) -> None:
        # Static membership: a restarted consumer takes its partitions back at once.
        env = {**self.env, "OMNIHUB_CONSUMER_INSTANCE_ID": f"chaos-{name}"}
        self.procs[name] = spawn(omnihub_argv(*ARGS[name]), env, self.logs / f"{name}.log")

    def kill(self, name: str) -> None:
        self.procs[name].kill()  # SIGKILL: no flush, no commit
        self.procs[name].wait()
        self.kills[name] += 1

    def stop_all(self) -> None:
        for proc in self.procs.values():
            stop(proc, grace_s=20)


@pytest.fixture(scope="module")
def platform(stack: StackConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    env = gateway_env(
        stack,
        OMNIHUB_TEMPORAL_TASK_QUEUE=unique("chaos"),
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
        OMNIHUB_CONCURRENCY_LIMIT="50",
    )
    logs = tmp_path_factory.mktemp("chaos")
    chaos = Platform(env, logs)
    with ExitStack() as stack_:
        for name in ARGS:
            chaos.start(name)
        stack_.callback(chaos.stop_all)
        api = stack_.enter_context(running_api(env, logs))
        yield chaos, api, cli_key(env, "chaos", "write")


async def _post_goals(client: httpx.AsyncClient) -> list[str]:
    accepted = []
    for i in range(GOALS):
        started = time.monotonic()
        for _ in range(20):  # the API stays up; a 503 while Kafka is busy is retried
            r = await client.post(
                "/api/v1/goals",
                json={"goal": f"say hi {i} then save the result"},
                headers={"Idempotency-Key": f"chaos-{i}"},
            )
            if r.status_code == 202:
                accepted.append(r.json()["run_id"])
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(max(0.0, GOAL_EVERY_S - (time.monotonic() - started)))
    return accepted


async def _kill_and_restart(chaos: Platform) -> None:
    for name in KILLS:
        await asyncio.sleep(4.0)
        chaos.kill(name)
        await asyncio.sleep(0.5)
        chaos.start(name)


async def _terminal(client: httpx.AsyncClient, run_ids: list[str]) -> dict[str, Any]:
    runs: dict[str, Any] = {}
    deadline = time.monotonic() + 180
    while len(runs) < len(run_ids):
        for run_id in run_ids:
            if run_id in runs:
                continue
            r = await client.get(f"/api/v1/runs/{run_id}")
            if r.status_code == 200 and r.json()["status"] in TERMINAL:
                runs[run_id] = r.json()
        assert time.monotonic() < deadline, f"{len(run_ids) - len(runs)} runs never ended"
        await asyncio.sleep(1.0)
    return runs


async def _log(env: dict[str, str]) -> list[Any]:
    settings = Settings(
        topic_prefix=env["OMNIHUB_TOPIC_PREFIX"], kafka_bootstrap=env["OMNIHUB_KAFKA_BOOTSTRAP"]
    )
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    return [
        rec.event
        async for rec in read_log(
            settings.kafka_bootstrap, codec, [topic_name(settings, Topic.RUNS)], follow=False
        )
        if rec.event is not None
    ]


async def test_kill_9_everything_while_goals_flow(platform: Any) -> None:
    chaos, api, key = platform
    began = time.monotonic()
    async with httpx.AsyncClient(
        base_url=api, timeout=30, headers={"Authorization": f"Bearer {key.key}"}
    ) as client:
        accepted, _ = await asyncio.gather(_post_goals(client), _kill_and_restart(chaos))
        runs = await _terminal(client, accepted)
        live = (await client.get("/api/v1/live")).json()["counters"]
        kpis = (await client.get("/api/v1/kpis")).json()["items"]

    events = await _log(chaos.env)
    mine = [e for e in events if e.envelope.run_id in set(accepted)]
    goals = Counter(e.envelope.run_id for e in mine if isinstance(e, GoalReceived))
    assert len(accepted) == GOALS
    assert set(goals) == set(accepted) and set(goals.values()) == {1}  # in Kafka once
    for run_id, run in runs.items():  # in the read API once, with its goal, terminal
        received = [t for t in run["timeline"] if t["event_type"] == "goal_received"]
        assert len(received) == 1, run_id
    completed = sum(isinstance(e, RunCompleted) for e in mine)
    failed = sum(isinstance(e, RunFailed) for e in mine)
    assert completed + failed == len(accepted)
    assert Counter(r["status"] for r in runs.values()) == Counter(
        {"completed": completed, "failed": failed} if failed else {"completed": completed}
    )

    conn = await asyncpg.connect(chaos.env["OMNIHUB_POSTGRES_DSN"])
    try:  # each run's save step wrote its row exactly once (keyed by its idempotency key)
        rows = await conn.fetch(
            "SELECT run_id, count(*) AS n FROM saga_tool_records"
            " WHERE run_id = ANY($1::text[]) GROUP BY run_id",
            accepted,
        )
    finally:
        await conn.close()
    saved = {r["run_id"]: r["n"] for r in rows}
    assert set(saved.values()) <= {1}
    assert len(saved) >= completed  # every completed run saved its record

    assert live["goals"] == len(accepted) and live["completions"] == completed
    assert sum(k["goals"] for k in kpis) == len(accepted)
    assert sum(k["completions"] for k in kpis) == completed
    figures = {
        "goals": len(accepted),
        "completed": completed,
        "failed": failed,
        "kills": dict(chaos.kills),
        # The run that waited longest on a killed process: its duration, 202 to its end.
        "slowest_run_s": round(max(r.get("duration_ms") or 0 for r in runs.values()) / 1000, 1),
        "test_s": round(time.monotonic() - began, 1),
    }
    print("chaos:", json.dumps(figures))
