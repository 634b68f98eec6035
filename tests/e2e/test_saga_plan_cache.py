"""A plan made by the model is learned by the plan-cache projector and served to the
next similar goal of the tenant: the model is asked once, the second run says so.

Real pieces: the fake model is a local OpenAI-compatible server, the plan-cache
projector runs as ``omnihub plan-cache run``, the worker runs here with the semantic
cache (the default), and every run's events are read back from Kafka.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from apps import worker as saga_worker
from domain.events import PlanGenerated
from infra.stack import StackConfig
from omnihub.settings import get_settings
from sagas.messages import RunInput, RunPolicy, RunResult
from sagas.workflow import AgentWorkflow
from streams.admin import ensure_declared_topics
from tests.saga_support import (
    FakeOpenAI,
    RunTap,
    completion,
    omnihub_process,
    plan_json,
    tapping,
    unique,
)


def model_plan(goal: str) -> str:
    """The fake model's plan for ``goal``: book a flight to the goal's last word, as a
    model would (a fixed plan would teach the cache "London -> Paris" whenever the
    London goal reaches the model before the Paris plan is learned)."""
    destination = goal.rstrip(".").split()[-1]
    return plan_json(
        {
            "id": "book",
            "tool": "transform",
            "arguments": {"op": "upper", "value": f"flight to {destination}"},
        },
        {
            "id": "confirm",
            "tool": "transform",
            "arguments": {"value": "${book.value}"},
            "depends_on": ["book"],
        },
    )


async def model(payload: dict[str, Any]) -> web.StreamResponse:
    asked = next(m["content"] for m in payload["messages"] if m["role"] == "user")
    goal = asked.splitlines()[0].removeprefix("Goal: ")  # "Goal: ...\nContext: ..."
    return completion(model_plan(goal), payload["model"])


async def run(client: Any, queue: str, tenant: str, goal: str) -> tuple[str, RunResult]:
    run_id = unique("run")
    handle = await client.start_workflow(
        AgentWorkflow.run,
        RunInput(
            run_id=run_id, tenant_id=tenant, goal=goal, goal_event_id="goal-1", policy=RunPolicy()
        ),
        id=run_id,
        task_queue=queue,
    )
    return run_id, await asyncio.wait_for(handle.result(), 180)


async def plan_of(tap: RunTap, run_id: str) -> PlanGenerated:
    events = await tap.wait_for(run_id, "plan_generated")
    plan = next(e for e in events if isinstance(e, PlanGenerated))
    return plan


async def test_a_learned_plan_is_served_to_the_next_similar_goal(
    stack: StackConfig, tmp_path: Any
) -> None:
    llm = FakeOpenAI(model)
    await llm.start()
    tag = unique("pc").replace("-", "")
    overrides = {
        "temporal_task_queue": f"saga-{tag}",
        "topic_prefix": tag,
        "projections_schema": tag,
        "plan_cache": "semantic",
        "llm_model": "openai/planner-test",
        "llm_api_base": llm.base_url,
    }
    settings = get_settings().model_copy(update=overrides)
    env = {**stack.client_env(), **{f"OMNIHUB_{k.upper()}": str(v) for k, v in overrides.items()}}
    await ensure_declared_topics(settings)
    tenant, queue = unique("t"), settings.temporal_task_queue
    client = await saga_worker.connect(settings)
    try:
        with omnihub_process(env, tmp_path / "plan-cache.log", "plan-cache", "run"):
            async with (
                saga_worker.saga_activities(settings) as acts,
                saga_worker.build_worker(client, settings, acts),
                tapping(settings) as tap,
            ):
                first_id, first = await run(client, queue, tenant, "Book a flight to Paris")
                learned = await plan_of(tap, first_id)
                # The projector learns asynchronously: ask again until the cache answers.
                for _ in range(120):
                    asked_before = len(llm.requests)
                    second_id, second = await run(client, queue, tenant, "Book a flight to London")
                    served = await plan_of(tap, second_id)
                    if served.from_cache:
                        break
                    await asyncio.sleep(1)
    finally:
        await llm.stop()
    assert (learned.from_cache, learned.template) == (False, "Book a flight to {DESTINATION}")
    assert learned.template_slots == {"DESTINATION": "Paris"}
    assert first.status == "completed" and second.status == "completed"
    assert served.from_cache and served.planner == "cache:openai/planner-test"
    assert served.cache_similarity is not None
    assert served.cache_similarity >= settings.plan_cache_threshold
    assert json.loads(second.results["book"]) == {"value": "FLIGHT TO LONDON"}
    assert len(llm.requests) == asked_before  # the served run never asked the model
