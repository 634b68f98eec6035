"""The litellm planner against a local OpenAI-compatible server started by the test."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from apps import worker as saga_worker
from domain.events import PlanGenerated, RunFailed
from omnihub.settings import get_settings
from sagas.llm_planner import LiteLLMPlanner
from sagas.messages import RunInput, RunPolicy
from sagas.plan import PlanInvalid, validate_plan
from sagas.planner import PlannerUnavailable, PlanRequest
from sagas.workflow import AgentWorkflow
from streams.admin import ensure_declared_topics
from tests.saga_support import FakeOpenAI, completion, plan_json, tapping, unique

TOOLS = {
    "transform": "noop",
    "wait": "noop",
    "http_call": "http_compensate",
    "pg_record": "pg_record_compensate",
}
GOOD_PLAN = plan_json(
    {
        "id": "fetch",
        "tool": "transform",
        "arguments": {"op": "echo", "value": "paris"},
        "risk": 0.1,
    },
    {
        "id": "shout",
        "tool": "transform",
        "arguments": {"op": "upper", "value": "${fetch.value}"},
        "depends_on": ["fetch"],
    },
)
CYCLIC_PLAN = plan_json(
    {"id": "a", "tool": "transform", "depends_on": ["b"]},
    {"id": "b", "tool": "transform", "depends_on": ["a"]},
)


class Script:
    """What the fake model answers next: text, or a delay before answering."""

    def __init__(self) -> None:
        self.content = GOOD_PLAN
        self.delay_s = 0.0

    async def __call__(self, payload: dict[str, Any]) -> web.StreamResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return completion(self.content, payload.get("model", "planner-test"))


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[tuple[FakeOpenAI, Script]]:
    script = Script()
    server = FakeOpenAI(script)
    await server.start()
    yield server, script
    await server.stop()


def planner(server: FakeOpenAI, timeout_s: float = 20.0) -> LiteLLMPlanner:
    return LiteLLMPlanner("openai/planner-test", api_base=server.base_url, timeout_s=timeout_s)


REQUEST = PlanRequest(
    "run-1", "acme", "Shout the destination", [{"name": "transform", "description": "Reshape."}]
)


async def test_a_valid_plan_comes_back_and_validates(llm: tuple[FakeOpenAI, Script]) -> None:
    server, script = llm
    script.content, script.delay_s = GOOD_PLAN, 0.0
    raw = await planner(server).propose(REQUEST)
    steps = validate_plan(raw, TOOLS)
    assert [(s.step_id, s.depends_on) for s in steps] == [("fetch", ()), ("shout", ("fetch",))]
    sent = server.requests[-1]
    assert sent["model"] == "planner-test"
    assert sent["response_format"] == {"type": "json_object"}
    assert "Shout the destination" in sent["messages"][-1]["content"]
    assert '"name": "transform"' in sent["messages"][0]["content"]


async def test_prose_instead_of_json_is_a_malformed_plan(llm: tuple[FakeOpenAI, Script]) -> None:
    server, script = llm
    script.content, script.delay_s = "I would first look up flights, then...", 0.0
    with pytest.raises(PlanInvalid) as caught:
        await planner(server).propose(REQUEST)
    assert caught.value.reason == "malformed"


async def test_a_cyclic_plan_is_refused_by_validation(llm: tuple[FakeOpenAI, Script]) -> None:
    server, script = llm
    script.content, script.delay_s = CYCLIC_PLAN, 0.0
    with pytest.raises(PlanInvalid) as caught:
        validate_plan(await planner(server).propose(REQUEST), TOOLS)
    assert caught.value.reason == "cycle"


async def test_a_slow_model_times_out_as_unavailable(llm: tuple[FakeOpenAI, Script]) -> None:
    server, script = llm
    script.content, script.delay_s = GOOD_PLAN, 5.0
    with pytest.raises(PlannerUnavailable):
        await planner(server, timeout_s=1.0).propose(REQUEST)


async def test_runs_plan_with_the_model_and_fail_cleanly_on_a_bad_plan(
    llm: tuple[FakeOpenAI, Script],
) -> None:
    server, script = llm
    script.delay_s = 0.0
    settings = get_settings().model_copy(
        update={
            "temporal_task_queue": unique("saga-llm"),
            "topic_prefix": unique("sagallm"),
            "llm_model": "openai/planner-test",
            "llm_api_base": server.base_url,
            "llm_timeout_s": 20.0,
        }
    )
    await ensure_declared_topics(settings)
    client = await saga_worker.connect(settings)
    async with (
        saga_worker.saga_activities(settings) as acts,
        saga_worker.build_worker(client, settings, acts),
        tapping(settings) as tap,
    ):
        outcomes = {}
        for content in (GOOD_PLAN, CYCLIC_PLAN):
            script.content = content
            run_id = unique("run")
            handle = await client.start_workflow(
                AgentWorkflow.run,
                RunInput(
                    run_id=run_id,
                    tenant_id=unique("t"),
                    goal="Shout the destination",
                    goal_event_id="goal-1",
                    policy=RunPolicy(),
                ),
                id=run_id,
                task_queue=settings.temporal_task_queue,
            )
            outcomes[content] = (run_id, await asyncio.wait_for(handle.result(), 90))
    good_run, good = outcomes[GOOD_PLAN]
    assert good.status == "completed"
    assert json.loads(good.results["shout"]) == {"value": "PARIS"}
    plan = next(e for e in tap.events[good_run] if isinstance(e, PlanGenerated))
    assert plan.planner == "openai/planner-test"
    bad_run, bad = outcomes[CYCLIC_PLAN]
    assert bad.status == "failed" and bad.reason.startswith("plan_invalid: cycle")
    events = await tap.wait_for(bad_run, "run_failed")
    assert [e.envelope.event_type for e in events] == ["goal_assessed", "run_failed"]
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.reason.startswith("plan_invalid: cycle")
