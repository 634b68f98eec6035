"""Kill -9 the worker mid-step: another worker finishes the run, and no effect doubles.

The workers run as subprocesses (``omnihub worker run``) on a task queue of their own.
While the webhook step is in flight on the first, a standby worker is started and
waited for; then the first is killed. The test checks that the run completes, the
retried webhook call carried the same idempotency key, and each Postgres record the run
wrote exists exactly once. It prints how long the run took to resume on the standby
(kill -> the step's retry reaches the webhook) and to complete (issue 16: a run used to
stall for ~80 s; the heartbeat and sticky-queue timeouts now bound it near 10 s).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import asyncpg

from apps import worker as saga_worker
from infra.stack import StackConfig
from omnihub.settings import get_settings
from sagas.messages import RunInput, RunPolicy
from sagas.workflow import AgentWorkflow
from streams.admin import ensure_declared_topics
from tests.saga_support import WebhookServer, omnihub_process, tapping, unique, wait_until


async def test_killed_worker_mid_step_completes_elsewhere_without_doubled_effects(
    stack: StackConfig, tmp_path: Path
) -> None:
    queue, prefix = unique("saga-crash"), unique("sagacrash")
    env = {
        **stack.client_env(),
        "OMNIHUB_TEMPORAL_TASK_QUEUE": queue,
        "OMNIHUB_TOPIC_PREFIX": prefix,
        "OMNIHUB_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",  # the test's webhook is on loopback
        "OMNIHUB_PLAN_CACHE": "disabled",  # the standby is ready in seconds, not the model's
    }
    first_ready, standby_ready = tmp_path / "first.ready", tmp_path / "standby.ready"
    settings = get_settings().model_copy(
        update={"temporal_task_queue": queue, "topic_prefix": prefix}
    )
    await ensure_declared_topics(settings)
    await saga_worker.migrate_tool_tables(settings)
    hooks = WebhookServer()
    await hooks.start()
    slow = hooks.hooks["/slow"]
    slow.delay_s = 25.0  # in flight until the kill (the step's own timeout is 30 s)
    client = await saga_worker.connect(settings)
    run_id = unique("run")
    goal = f"save the first then post to {hooks.base_url}/slow then save the second"
    log = tmp_path / "worker.log"
    try:
        async with tapping(settings) as tap:
            first_env = {**env, "OMNIHUB_READY_FILE": str(first_ready)}
            standby_env = {**env, "OMNIHUB_READY_FILE": str(standby_ready)}
            with omnihub_process(first_env, log, "worker", "run") as first:
                handle = await client.start_workflow(
                    AgentWorkflow.run,
                    RunInput(
                        run_id=run_id,
                        tenant_id=unique("t"),
                        goal=goal,
                        goal_event_id="goal-1",
                        policy=RunPolicy(),
                    ),
                    id=run_id,
                    task_queue=queue,
                )
                await wait_until(lambda: len(slow.requests) == 1, 120, "the webhook call")
                with omnihub_process(standby_env, tmp_path / "standby.log", "worker", "run"):
                    await wait_until(standby_ready.exists, 60, "the standby worker")
                    slow.delay_s = 0.5  # the retry answers at once
                    first.kill()  # SIGKILL: no graceful shutdown, the activity is lost mid-call
                    killed = time.monotonic()
                    first.wait(10)
                    await wait_until(lambda: len(slow.requests) == 2, 120, "the retry")
                    resumed = time.monotonic() - killed
                    result = await asyncio.wait_for(handle.result(), 180)
                    completed = time.monotonic() - killed
            events = await tap.wait_for(run_id, "run_completed")
    finally:
        await hooks.stop()
    figures = {
        "resume_after_kill_s": round(resumed, 2),
        "complete_after_kill_s": round(completed, 2),
    }
    print(
        f"\nworker killed mid-step: resumed on the standby after {resumed:.1f} s,"
        f" completed after {completed:.1f} s (target: resume within 15 s)"
    )
    print(json.dumps(figures))
    assert result.status == "completed", log.read_text()[-3000:]
    assert {r["key"] for r in slow.requests} == {f"{run_id}:s2"}
    assert len(slow.requests) == 2  # the lost attempt and its retry, one key
    types = [(e.envelope.event_type, getattr(e, "step_id", None)) for e in events]
    assert types.count(("step_completed", "s1")) == 1  # done before the crash: not redone
    assert types.count(("step_completed", "s2")) == 1
    assert types.count(("step_started", "s2")) == 2
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        rows = await conn.fetch(
            "SELECT step_id, count(*) AS n FROM saga_tool_records"
            " WHERE run_id = $1 GROUP BY step_id",
            run_id,
        )
    finally:
        await conn.close()
    assert {r["step_id"]: r["n"] for r in rows} == {"s1": 1, "s3": 1}
