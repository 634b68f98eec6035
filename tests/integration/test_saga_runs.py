"""AgentWorkflow against the real Temporal dev server, Kafka, Postgres and Redis.

Goals go in as ``goal_received`` records; the saga bridge starts the workflows; a worker
in this process runs them on a task queue of this module's own; the assertions read the
run's events back from Kafka.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from redis.asyncio import Redis
from temporalio.client import Client

from apps import worker as saga_worker
from apps.saga_bridge import run_bridge
from domain import ids
from domain.events import (
    ApprovalDenied,
    ApprovalGranted,
    ApprovalRequested,
    Event,
    PlanGenerated,
    RunCancelled,
    RunCancelRequested,
    RunCompleted,
    RunFailed,
    StepCompensated,
    StepCompleted,
    StepFailed,
    StepStarted,
)
from omnihub.settings import Settings, get_settings
from sagas.messages import RunInput, RunPolicy
from sagas.workflow import AgentWorkflow
from streams.admin import ensure_declared_topics
from streams.producer import KafkaEventAppender
from streams.topics import Topic, topic_name
from tests.saga_support import (
    RunTap,
    ScriptedPlanner,
    WebhookServer,
    codec_for,
    goal_event,
    plan_json,
    tapping,
    unique,
    wait_until,
)


@dataclass
class Sagas:
    settings: Settings
    client: Client
    tap: RunTap
    appender: KafkaEventAppender
    hooks: WebhookServer
    pg: asyncpg.Pool

    async def submit(self, goal: str, tenant: str | None = None) -> str:
        event = goal_event(tenant or unique("t"), goal)
        await self.appender.append(event)
        return event.envelope.run_id

    async def finished(self, run_id: str, terminal: str, timeout_s: float = 90.0) -> list[Event]:
        return await self.tap.wait_for(run_id, terminal, timeout_s)


@pytest.fixture(scope="module")
async def sagas() -> AsyncIterator[Sagas]:
    # Own topics and task queue: other tests' goals never reach this module's bridge.
    settings = get_settings().model_copy(
        update={
            "temporal_task_queue": unique("saga-it"),
            "topic_prefix": unique("sagait"),
            "webhook_allowed_hosts": ["127.0.0.1"],  # the test's webhook is on loopback
        }
    )
    await ensure_declared_topics(settings)
    await saga_worker.migrate_tool_tables(settings)
    client = await saga_worker.connect(settings)
    appender = KafkaEventAppender(settings, codec_for(settings))
    hooks = WebhookServer()
    await hooks.start()
    pg = await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=2)
    stop, ready = asyncio.Event(), asyncio.Event()
    async with (
        saga_worker.saga_activities(settings) as acts,
        saga_worker.build_worker(client, settings, acts),
    ):
        bridge = asyncio.create_task(
            run_bridge(
                settings,
                stop,
                group_id=unique("bridge-it"),
                start_at_latest=True,
                ready=ready,
                client=client,
            )
        )
        await asyncio.wait_for(ready.wait(), 60)
        async with tapping(settings) as tap:
            yield Sagas(settings, client, tap, appender, hooks, pg)
        stop.set()
        await bridge
    await appender.stop()
    await hooks.stop()
    await pg.close()


def of_type(events: list[Event], cls: type[Event]) -> list[Event]:
    return [e for e in events if isinstance(e, cls)]


def compensations(events: list[Event]) -> list[tuple[str, str]]:
    """(step id, step outcome) of each ``step_compensated``, in log order."""
    return [
        (e.step_id, json.loads(e.result_json)["step_outcome"])
        for e in events
        if isinstance(e, StepCompensated)
    ]


def cancel_request(run_id: str, tenant: str, reason: str, by: str) -> RunCancelRequested:
    env = ids.envelope(
        RunCancelRequested, run_id=run_id, tenant_id=tenant, actor="test", correlation_id=run_id
    )
    return RunCancelRequested(env, reason, by)


def index(events: list[Event], event_type: str, step_id: str | None = None) -> int:
    for i, e in enumerate(events):
        if e.envelope.event_type == event_type and (
            step_id is None or getattr(e, "step_id", None) == step_id
        ):
            return i
    raise AssertionError(
        f"no {event_type} {step_id or ''} in {[x.envelope.event_type for x in events]}"
    )


async def test_sibling_steps_run_at_the_same_time(sagas: Sagas) -> None:
    run_id = await sagas.submit("say hello then wait 1.5 s and also wait 1.5 s then save it")
    events = await sagas.finished(run_id, "run_completed")
    # Each sibling takes 1.5 s: run one after the other, the second would start only
    # after the first completed.
    assert max(index(events, "step_started", "s2"), index(events, "step_started", "s3")) < min(
        index(events, "step_completed", "s2"), index(events, "step_completed", "s3")
    )
    started = [e for e in events if isinstance(e, StepStarted) and e.step_id in ("s2", "s3")]
    gap = abs(started[0].envelope.occurred_at - started[1].envelope.occurred_at)
    assert gap.total_seconds() < 1.5


async def test_happy_path_events_arrive_in_causal_order(sagas: Sagas) -> None:
    run_id = await sagas.submit("say hello then upper paris and also wait 1 s then save the trip")
    events = await sagas.finished(run_id, "run_completed")
    types = [e.envelope.event_type for e in events]
    assert types[:3] == ["goal_received", "goal_assessed", "plan_generated"]
    assert types[-1] == "run_completed"
    plan = of_type(events, PlanGenerated)[0]
    assert isinstance(plan, PlanGenerated) and plan.planner == "rules" and not plan.from_cache
    for step in plan.steps:
        done = index(events, "step_completed", step.step_id)
        assert index(events, "step_started", step.step_id) < done
        for dep in step.depends_on:
            assert index(events, "step_completed", dep) < index(
                events, "step_started", step.step_id
            )
    # s2 and s3 are siblings; that they run at once is the next test's (s2 is instant,
    # so whether it ends before s3 begins is a matter of timing, not of the saga).
    ids_seen = [e.envelope.event_id for e in events]
    assert len(ids_seen) == len(set(ids_seen))
    assert all(e.envelope.correlation_id == run_id for e in events)
    completed = of_type(events, RunCompleted)[0]
    assert isinstance(completed, RunCompleted) and completed.step_count == 4
    assert json.loads(completed.result_json)["s2"] == {"value": "PARIS"}
    steps = [e for e in events if isinstance(e, StepCompleted)]
    saved = json.loads(next(e for e in steps if e.step_id == "s4").result_json)
    row = await sagas.pg.fetchrow(
        "SELECT record FROM saga_tool_records WHERE idempotency_key = $1", saved["record_id"]
    )
    assert row is not None and json.loads(row["record"])["previous"] == {"value": "PARIS"}


async def test_redelivered_goal_starts_nothing_twice(sagas: Sagas) -> None:
    event = goal_event(unique("t"), "say once")
    await sagas.appender.append(event)
    run_id = event.envelope.run_id
    await sagas.finished(run_id, "run_completed")
    await sagas.appender.append(event)  # the same fact again, e.g. after a producer retry
    await sagas.appender.append(goal_event(event.envelope.tenant_id, "marker"))
    marker_run = await sagas.submit("say marker")
    await sagas.finished(marker_run, "run_completed")
    assert sagas.tap.types(run_id).count("run_completed") == 1
    assert sagas.tap.types(run_id).count("goal_assessed") == 1


async def test_failing_step_compensates_in_reverse_completion_order(sagas: Sagas) -> None:
    sagas.hooks.hooks["/refuse"].statuses = [422]
    run_id = await sagas.submit(f"say a then save the b then post to {sagas.hooks.base_url}/refuse")
    events = await sagas.finished(run_id, "run_failed")
    failed = of_type(events, StepFailed)
    assert [(f.step_id, f.retryable, f.final) for f in failed] == [("s3", False, True)]  # type: ignore[attr-defined]
    assert len(sagas.hooks.hooks["/refuse"].requests) == 1  # a domain error is not retried
    completion_order = [e.step_id for e in of_type(events, StepCompleted)]  # type: ignore[attr-defined]
    compensated = [e.step_id for e in of_type(events, StepCompensated)]  # type: ignore[attr-defined]
    assert completion_order == ["s1", "s2"]
    assert compensated == ["s2", "s1"]
    assert index(events, "step_compensated", "s1") < index(events, "run_failed")
    run_failed = of_type(events, RunFailed)[0]
    assert isinstance(run_failed, RunFailed)
    assert run_failed.failed_step_id == "s3"
    assert run_failed.compensated_step_ids == ("s2", "s1")
    assert "422" in run_failed.reason
    row = await sagas.pg.fetchrow(
        "SELECT compensated_at FROM saga_tool_records WHERE idempotency_key = $1", f"{run_id}:s2"
    )
    assert row is not None and row["compensated_at"] is not None


async def test_transient_failures_are_retried_with_one_idempotency_key(sagas: Sagas) -> None:
    hook = sagas.hooks.hooks["/flaky"]
    hook.statuses = [503, 200]
    run_id = await sagas.submit(f"post to {sagas.hooks.base_url}/flaky")
    events = await sagas.finished(run_id, "run_completed")
    failed = of_type(events, StepFailed)
    assert [(f.attempt, f.retryable, f.final) for f in failed] == [(1, True, False)]  # type: ignore[attr-defined]
    assert [e.attempt for e in of_type(events, StepCompleted)] == [2]  # type: ignore[attr-defined]
    assert {r["key"] for r in hook.requests} == {f"{run_id}:s1"}


async def test_approval_granted_lets_the_risky_step_run(sagas: Sagas) -> None:
    run_id = await sagas.submit("say hi then approve the payment")
    events = await sagas.tap.wait_for(run_id, "approval_requested")
    request = of_type(events, ApprovalRequested)[0]
    assert (
        isinstance(request, ApprovalRequested) and request.step_id == "s2" and request.risk == 0.9
    )
    assert "step_started" not in [
        e.envelope.event_type for e in events[index(events, "approval_requested") :]
    ]
    await sagas.appender.append(decision(ApprovalGranted, request, "alice", "looks right"))
    events = await sagas.finished(run_id, "run_completed")
    assert index(events, "approval_granted") < index(events, "step_started", "s2")


async def test_approval_denied_compensates(sagas: Sagas) -> None:
    run_id = await sagas.submit("save the draft then pay 40 EUR to bob")
    request = of_type(await sagas.tap.wait_for(run_id, "approval_requested"), ApprovalRequested)[0]
    await sagas.appender.append(decision(ApprovalDenied, request, "bob", "too broad"))  # type: ignore[arg-type]
    events = await sagas.finished(run_id, "run_failed")
    failed = of_type(events, RunFailed)[0]
    assert isinstance(failed, RunFailed)
    assert failed.failed_step_id == "s2" and "denied by bob: too broad" in failed.reason
    assert failed.compensated_step_ids == ("s1",)
    assert [e.step_id for e in of_type(events, StepCompensated)] == ["s1"]  # type: ignore[attr-defined]


async def test_money_moving_goal_waits_for_approval_with_what_is_approved(sagas: Sagas) -> None:
    # Issue 17: the guardian said "moves money" and the run completed without approval.
    run_id = await sagas.submit("refund 500 EUR to account 42 then pay 900 EUR to bob")
    events = await sagas.tap.wait_for(run_id, "approval_requested")
    first = of_type(events, ApprovalRequested)[0]
    assert isinstance(first, ApprovalRequested) and first.step_id == "s1"
    assert "step_started" not in [e.envelope.event_type for e in events]
    assert first.goal == "refund 500 EUR to account 42 then pay 900 EUR to bob"
    assert first.requested_by == "test"  # the goal_received envelope's actor
    assert json.loads(first.arguments_json)["record"]["instruction"].startswith("refund 500")
    assert "payment_instructions" in first.compensation and "moves money" in first.reasons
    await sagas.appender.append(decision(ApprovalGranted, first, "alice", "ok"))
    events = await sagas.tap.wait_for(run_id, "approval_requested", count=2)
    second = of_type(events, ApprovalRequested)[1]
    assert isinstance(second, ApprovalRequested) and second.step_id == "s2"
    assert set(json.loads(second.inputs_json)) == {"s1"}  # what the earlier step returned
    await sagas.appender.append(decision(ApprovalGranted, second, "alice", "ok"))
    await sagas.finished(run_id, "run_completed")


async def test_a_large_amount_needs_two_distinct_approvers_never_the_requester(
    sagas: Sagas,
) -> None:
    run_id = await sagas.submit("wire 5000 USD to account 42")
    request = of_type(await sagas.tap.wait_for(run_id, "approval_requested"), ApprovalRequested)[0]
    assert isinstance(request, ApprovalRequested) and request.required_approvals == 2
    for approver in ("alice", "alice"):
        await sagas.appender.append(decision(ApprovalGranted, request, approver, "ok"))
    await sagas.appender.append(requester_grant(request))
    await asyncio.sleep(3)  # time enough to start the step, were one grant enough
    assert "step_started" not in sagas.tap.types(run_id)
    await sagas.appender.append(decision(ApprovalGranted, request, "bob", "ok too"))
    events = await sagas.finished(run_id, "run_completed")
    by_bob = [i for i, e in enumerate(events) if getattr(e, "approver", "") == "bob"]
    assert index(events, "step_started", "s1") > by_bob[0]


async def test_a_failing_run_withdraws_its_pending_approval_at_once(sagas: Sagas) -> None:
    sagas.hooks.hooks["/refuse-sibling"].statuses = [422]
    url = f"{sagas.hooks.base_url}/refuse-sibling"
    run_id = await sagas.submit(f"say go then post to {url} and also pay 5 EUR to bob")
    started = time.monotonic()
    events = await sagas.finished(run_id, "run_failed", timeout_s=60)
    assert time.monotonic() - started < 30  # not the approval's 3600 s timeout
    denied = of_type(events, ApprovalDenied)
    assert [(d.approver, d.step_id) for d in denied] == [("system:withdrawn", "s3")]  # type: ignore[attr-defined]
    assert "step s2 failed" in denied[0].reason  # type: ignore[attr-defined]
    assert "s3" not in [
        getattr(e, "step_id", "") for e in events if e.envelope.event_type == "step_started"
    ]
    failed = of_type(events, RunFailed)[0]
    assert isinstance(failed, RunFailed) and failed.failed_step_id == "s2"


async def test_a_cancelled_run_withdraws_its_pending_approval(sagas: Sagas) -> None:
    run_id = await sagas.submit("save the note then pay 5 EUR to bob")
    events = await sagas.tap.wait_for(run_id, "approval_requested")
    tenant = events[0].envelope.tenant_id
    await sagas.appender.append(cancel_request(run_id, tenant, "not now", "user:carol"))
    events = await sagas.finished(run_id, "run_cancelled", timeout_s=60)
    denied = of_type(events, ApprovalDenied)
    assert [(d.approver, d.reason) for d in denied] == [  # type: ignore[attr-defined]
        ("system:withdrawn", "withdrawn: run cancelled: not now")
    ]
    assert compensations(events) == [("s1", "completed")]


async def test_approval_timeout_denies_and_compensates(sagas: Sagas) -> None:
    run_id, tenant = unique("run"), unique("t")
    policy = RunPolicy(approval_threshold=0.7, approval_timeout_s=1.5)
    await sagas.client.start_workflow(
        AgentWorkflow.run,
        RunInput(
            run_id=run_id,
            tenant_id=tenant,
            goal="say a then wire the money",
            goal_event_id="no-goal-event",
            policy=policy,
        ),
        id=run_id,
        task_queue=sagas.settings.temporal_task_queue,
    )
    events = await sagas.finished(run_id, "run_failed")
    denied = of_type(events, ApprovalDenied)[0]
    assert (
        isinstance(denied, ApprovalDenied)
        and denied.timed_out
        and denied.approver == "system:timeout"
    )
    assert [e.step_id for e in of_type(events, StepCompensated)] == ["s1"]  # type: ignore[attr-defined]


async def test_cancel_request_stops_the_run_and_compensates(sagas: Sagas) -> None:
    run_id = await sagas.submit("save the note then wait 60 s")
    events = await sagas.tap.wait_for(run_id, "step_started", count=2)
    tenant = events[0].envelope.tenant_id
    await sagas.appender.append(cancel_request(run_id, tenant, "changed my mind", "user:carol"))
    events = await sagas.finished(run_id, "run_cancelled")
    cancelled = of_type(events, RunCancelled)[0]
    assert isinstance(cancelled, RunCancelled)
    assert (cancelled.reason, cancelled.cancelled_by, cancelled.compensated_step_ids) == (
        "changed my mind",
        "user:carol",
        ("s2", "s1"),  # the wait was in flight: its outcome is unknown, its undo a no-op
    )
    assert "step_completed" not in [
        e.envelope.event_type for e in events if getattr(e, "step_id", "") == "s2"
    ]


async def test_cancel_undoes_the_call_in_flight_before_what_completed(sagas: Sagas) -> None:
    slow, url = sagas.hooks.hooks["/slow-cancel"], f"{sagas.hooks.base_url}/slow-cancel"
    slow.method_delay_s = {"POST": 60.0}  # the call hangs; its undo (DELETE) answers at once
    run_id = await sagas.submit(f"save the order then post undoable to {url}")
    # The webhook has the call: its effect may have happened, though no result came back.
    await wait_until(lambda: len(slow.requests) == 1, 60, "the webhook call")
    tenant = sagas.tap.events[run_id][0].envelope.tenant_id
    await sagas.appender.append(cancel_request(run_id, tenant, "too slow", "user:dan"))
    events = await sagas.finished(run_id, "run_cancelled")
    types = [(e.envelope.event_type, getattr(e, "step_id", None)) for e in events]
    assert ("step_started", "s2") in types and ("step_completed", "s2") not in types
    assert compensations(events) == [("s2", "unknown"), ("s1", "completed")]
    assert index(events, "step_compensated", "s2") < index(events, "step_compensated", "s1")
    assert index(events, "step_compensated", "s1") < index(events, "run_cancelled")
    cancelled = of_type(events, RunCancelled)[0]
    assert isinstance(cancelled, RunCancelled)
    assert cancelled.compensated_step_ids == ("s2", "s1")
    post, undo = slow.requests
    assert (post["method"], post["key"]) == ("POST", f"{run_id}:s2")
    assert (undo["method"], undo["key"]) == ("DELETE", f"{run_id}:s2:compensate")
    assert json.loads(undo["body"])["step_outcome"] == "unknown"
    row = await sagas.pg.fetchrow(
        "SELECT compensated_at FROM saga_tool_records WHERE idempotency_key = $1", f"{run_id}:s1"
    )
    assert row is not None and row["compensated_at"] is not None


async def run_scripted(sagas: Sagas, plan: str, terminal: str) -> tuple[str, list[Event]]:
    """Run ``plan`` (from a scripted planner on a worker of its own) to ``terminal``."""
    run_id = unique("run")
    settings = sagas.settings.model_copy(update={"temporal_task_queue": unique("saga-scripted")})
    async with (
        saga_worker.saga_activities(settings, planner=ScriptedPlanner(plan)) as acts,
        saga_worker.build_worker(sagas.client, settings, acts),
    ):
        await sagas.client.start_workflow(
            AgentWorkflow.run,
            RunInput(
                run_id=run_id,
                tenant_id=unique("t"),
                goal="scripted",
                goal_event_id="no-goal-event",
                policy=RunPolicy(),
            ),
            id=run_id,
            task_queue=settings.temporal_task_queue,
        )
        return run_id, await sagas.finished(run_id, terminal)


def record_then_call(base: str, path: str, **step: object) -> str:
    return plan_json(
        {"id": "s1", "tool": "pg_record", "arguments": {"collection": "notes", "record": {}}},
        {
            "id": "s2",
            "tool": "http_call",
            "depends_on": ["s1"],
            **step,
            "arguments": {
                "url": f"{base}{path}",
                "compensate_url": f"{base}{path}/undo",
                **step.get("arguments", {}),  # type: ignore[dict-item]
            },
        },
    )


async def test_a_timed_out_attempt_then_a_reported_failure_is_undone(sagas: Sagas) -> None:
    # Issue 16: attempt 1 timed out (it may have acted), attempt 2 failed: undo the step.
    hook, undo = sagas.hooks.hooks["/late-then-fail"], sagas.hooks.hooks["/late-then-fail/undo"]
    hook.delay_s, hook.statuses = 6.0, [200, 422]
    plan = record_then_call(sagas.hooks.base_url, "/late-then-fail", timeout_s=2, max_attempts=2)

    async def answer_the_retry_at_once() -> None:
        await wait_until(lambda: len(hook.requests) == 1, 60, "the first attempt")
        hook.delay_s = 0.0

    quick = asyncio.create_task(answer_the_retry_at_once())
    run_id, events = await run_scripted(sagas, plan, "run_failed")
    await quick
    assert [r["key"] for r in hook.requests] == [f"{run_id}:s2", f"{run_id}:s2"]
    assert compensations(events) == [("s2", "unknown"), ("s1", "completed")]
    assert [r["key"] for r in undo.requests] == [f"{run_id}:s2:compensate"]


async def test_attempts_that_all_reported_failure_are_not_undone(sagas: Sagas) -> None:
    hook = sagas.hooks.hooks["/fail-twice"]
    hook.statuses = [503, 422]
    plan = record_then_call(sagas.hooks.base_url, "/fail-twice", max_attempts=2)
    _, events = await run_scripted(sagas, plan, "run_failed")
    assert len(hook.requests) == 2
    assert compensations(events) == [("s1", "completed")]


async def test_an_http_read_timeout_is_an_unknown_outcome_and_is_undone(sagas: Sagas) -> None:
    # Issue 16: the request may have landed; it used to count as a reported failure.
    hook, undo = sagas.hooks.hooks["/no-answer"], sagas.hooks.hooks["/no-answer/undo"]
    hook.delay_s = 5.0
    plan = record_then_call(
        sagas.hooks.base_url,
        "/no-answer",
        arguments={"timeout_s": 1},
        timeout_s=20,
        max_attempts=1,
    )
    run_id, events = await run_scripted(sagas, plan, "run_failed")
    assert [r["key"] for r in hook.requests] == [f"{run_id}:s2"]
    finals = [(e.step_id, e.error_type) for e in of_type(events, StepFailed) if e.final]  # type: ignore[attr-defined]
    assert finals == [("s2", "ToolOutcomeUnknown")]
    assert compensations(events) == [("s2", "unknown"), ("s1", "completed")]
    assert [json.loads(r["body"])["step_outcome"] for r in undo.requests] == ["unknown"]


async def test_a_step_abandoned_on_timeout_while_a_sibling_fails_is_undone(sagas: Sagas) -> None:
    base, run_id = sagas.hooks.base_url, unique("run")
    sagas.hooks.hooks["/sibling-refuse"].statuses = [422]
    slow, undo = sagas.hooks.hooks["/sibling-slow"], sagas.hooks.hooks["/sibling-slow/undo"]
    slow.delay_s = 20.0  # longer than s2's timeout: Temporal abandons the attempt
    plan = plan_json(
        {"id": "s1", "tool": "pg_record", "arguments": {"collection": "notes", "record": {}}},
        {
            "id": "s2",
            "tool": "http_call",
            "arguments": {
                "url": f"{base}/sibling-slow",
                "compensate_url": f"{base}/sibling-slow/undo",
            },
            "depends_on": ["s1"],
            "timeout_s": 3,
            "max_attempts": 1,
        },
        {
            "id": "s3",
            "tool": "http_call",
            "arguments": {"url": f"{base}/sibling-refuse"},
            "depends_on": ["s1"],
        },
    )
    settings = sagas.settings.model_copy(update={"temporal_task_queue": unique("saga-scripted")})
    async with (
        saga_worker.saga_activities(settings, planner=ScriptedPlanner(plan)) as acts,
        saga_worker.build_worker(sagas.client, settings, acts),
    ):
        await sagas.client.start_workflow(
            AgentWorkflow.run,
            RunInput(
                run_id=run_id,
                tenant_id=unique("t"),
                goal="pay, then notify",
                goal_event_id="no-goal-event",
                policy=RunPolicy(),
            ),
            id=run_id,
            task_queue=settings.temporal_task_queue,
        )
        events = await sagas.finished(run_id, "run_failed")
    finals = {(e.step_id, e.error_type) for e in of_type(events, StepFailed) if e.final}  # type: ignore[attr-defined]
    assert finals == {("s3", "ToolDomainError"), ("s2", "TimeoutError")}
    # s3 said it failed: nothing to undo. s2 was abandoned with its call sent: undone.
    assert compensations(events) == [("s2", "unknown"), ("s1", "completed")]
    failed = of_type(events, RunFailed)[0]
    assert isinstance(failed, RunFailed)
    assert (failed.failed_step_id, failed.compensated_step_ids) == ("s3", ("s2", "s1"))
    assert [r["key"] for r in slow.requests] == [f"{run_id}:s2"]
    assert [r["key"] for r in undo.requests] == [f"{run_id}:s2:compensate"]


async def test_kill_switch_refuses_the_run(sagas: Sagas) -> None:
    tenant = unique("t")
    redis = Redis.from_url(sagas.settings.redis_url)
    await redis.set("omnihub:killswitch:runs", "1", ex=300)
    try:
        run_id = await sagas.submit("say hi", tenant)
        events = await sagas.finished(run_id, "run_failed")
    finally:
        await redis.delete("omnihub:killswitch:runs")
        await redis.aclose()
    assert "plan_generated" not in [e.envelope.event_type for e in events]
    failed = of_type(events, RunFailed)[0]
    assert isinstance(failed, RunFailed) and failed.reason == "refused: kill switch engaged: runs"


async def test_long_runs_continue_as_new_carrying_state(sagas: Sagas) -> None:
    run_id, tenant = unique("run"), unique("t")
    goal = " then ".join(f"say {i}" for i in range(8)) + " then save the total"
    handle = await sagas.client.start_workflow(
        AgentWorkflow.run,
        RunInput(
            run_id=run_id,
            tenant_id=tenant,
            goal=goal,
            goal_event_id="no-goal-event",
            policy=RunPolicy(history_limit=40),
        ),
        id=run_id,
        task_queue=sagas.settings.temporal_task_queue,
    )
    result = await asyncio.wait_for(handle.result(), 120)
    assert result.status == "completed" and len(result.results) == 9
    first = sagas.client.get_workflow_handle(run_id, run_id=handle.first_execution_run_id)
    history = await first.fetch_history()
    assert history.events[-1].HasField("workflow_execution_continued_as_new_event_attributes")
    events = await sagas.finished(run_id, "run_completed")
    assert [e.envelope.event_type for e in events].count("plan_generated") == 1
    assert json.loads(of_type(events, RunCompleted)[0].result_json)["s9"]["inserted"] is True  # type: ignore[attr-defined]


def requester_grant(request: ApprovalRequested) -> Event:
    """A grant in the requester's own name: the workflow must not count it."""
    env = request.envelope
    envelope = ids.envelope(
        ApprovalGranted,
        run_id=env.run_id,
        tenant_id=env.tenant_id,
        actor=request.requested_by,
        correlation_id=env.run_id,
        discriminator=(request.approval_id, "self"),
    )
    return ApprovalGranted(envelope, request.approval_id, request.step_id, request.requested_by)


def decision(
    cls: type[ApprovalGranted] | type[ApprovalDenied],
    request: ApprovalRequested,
    approver: str,
    reason: str,
) -> Event:
    env = request.envelope
    envelope = ids.envelope(
        cls,
        run_id=env.run_id,
        tenant_id=env.tenant_id,
        actor=f"user:{approver}",
        correlation_id=env.run_id,
        causation_id=env.event_id,
        discriminator=(request.approval_id, "human"),
    )
    return cls(envelope, request.approval_id, request.step_id, approver, reason)


async def test_undecodable_records_are_dead_lettered_and_the_bridge_keeps_going(
    sagas: Sagas,
) -> None:
    runs, dead = (
        topic_name(sagas.settings, Topic.RUNS),
        topic_name(sagas.settings, Topic.DEADLETTER),
    )
    producer = AIOKafkaProducer(bootstrap_servers=sagas.settings.kafka_bootstrap)
    await producer.start()
    try:
        poison = await producer.send_and_wait(
            runs, b"\xc3\x01not avro", key=b"poison", headers=[("event_type", b"goal_received")]
        )
    finally:
        await producer.stop()
    run_id = await sagas.submit("say still alive")
    await sagas.finished(run_id, "run_completed")
    letters = await read_all(sagas.settings.kafka_bootstrap, dead)
    source = f"{runs}:{poison.partition}:{poison.offset}".encode()
    letter = next(h for h in letters if h.get("dlq.source") == source)
    assert letter["dlq.reason"] in (b"unknown_schema", b"corrupt_body", b"bad_header")
    assert letter["event_type"] == b"goal_received"


async def read_all(bootstrap: str, topic: str) -> list[dict[str, bytes]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        found: list[dict[str, bytes]] = []
        for _ in range(50):
            batch = await consumer.getmany(timeout_ms=200)
            found += [dict(r.headers) for records in batch.values() for r in records]
            if found and not batch:
                break
        return found
    finally:
        await consumer.stop()
