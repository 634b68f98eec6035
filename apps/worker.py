"""The worker process: ``omnihub worker run``, a Temporal worker for ``AgentWorkflow``.

The composition root of the saga side: real clients in (Kafka appender, Postgres, Redis,
HTTP, the plan cache and the planner), activities and the workflow served. Any number
of workers can serve one task queue side by side; Temporal spreads workflow and
activity tasks between them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import py_compile
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from apps import temporal_client
from apps.runtime import serve
from domain.plan_cache import DisabledPlanCache, PlanCache
from domain.risk_policy import policies_from
from omnihub.lazy import Lazy
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections.keyring import privacy_for
from projections.migrate import apply_migrations
from sagas.activities import SagaActivities
from sagas.killswitch import KillSwitches, RedisKillSwitches
from sagas.plan_source import PlanSource
from sagas.planner import Planner, RuleBasedPlanner
from sagas.telemetry import MetricsInterceptor
from sagas.tools import ToolRegistry
from sagas.tools.http_call import HttpCallTool
from sagas.tools.pg_record import PgRecordTool
from sagas.tools.transform import TransformTool
from sagas.tools.url_policy import UrlPolicy
from sagas.tools.wait import WaitTool
from sagas.workflow import AgentWorkflow
from streams.codec import EventCodec
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry

log = logging.getLogger(__name__)


def _semantic_cache(settings: Settings, postgres: Lazy[asyncpg.Pool]) -> PlanCache:
    # Imported only when chosen: it brings the embedding model (torch) with it.
    from projections.plan_cache.adapter import semantic_plan_cache

    return semantic_plan_cache(settings, postgres)


# ``OMNIHUB_PLAN_CACHE`` picks one.
PLAN_CACHES: dict[str, Callable[[Settings, Lazy[asyncpg.Pool]], PlanCache]] = {
    "disabled": lambda settings, pool: DisabledPlanCache(),
    "semantic": _semantic_cache,
}


def build_registry(
    postgres: Lazy[asyncpg.Pool], http: httpx.AsyncClient, settings: Settings
) -> ToolRegistry:
    """The built-in tools. Register new tools here; the workflow needs no change."""
    policy = UrlPolicy(settings.webhook_allowed_hosts, block_private=True)
    return ToolRegistry(
        [TransformTool(), WaitTool(), HttpCallTool(http, policy), PgRecordTool(postgres)]
    )


def build_planner(settings: Settings) -> Planner:
    """The LLM planner when a model is configured, else the documented rules."""
    if not settings.llm_model:
        return RuleBasedPlanner(policies_from(settings.tenant_policies))
    from sagas.llm_planner import LiteLLMPlanner

    return LiteLLMPlanner(
        settings.llm_model,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
    )


def build_plan_cache(settings: Settings, postgres: Lazy[asyncpg.Pool]) -> PlanCache:
    try:
        factory = PLAN_CACHES[settings.plan_cache]
    except KeyError:
        raise ValueError(
            f"OMNIHUB_PLAN_CACHE={settings.plan_cache!r} is not one of {sorted(PLAN_CACHES)}"
        ) from None
    return factory(settings, postgres)


@asynccontextmanager
async def saga_activities(
    settings: Settings, kill_switches: KillSwitches | None = None, planner: Planner | None = None
) -> AsyncIterator[SagaActivities]:
    """The activities wired to real clients, closed on exit; the planner is the settings'
    unless one is given."""
    async with AsyncExitStack() as stack:
        codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
        privacy = privacy_for(settings, codec.registry)
        stack.push_async_callback(privacy.close)
        # No linger: each append is awaited before the step goes on, so waiting to fill
        # a batch only adds to every activity's time (5 ms an append by default).
        sends = settings.model_copy(update={"producer_linger_ms": settings.worker_linger_ms})
        appender = KafkaEventAppender(sends, codec, privacy=privacy)
        stack.push_async_callback(appender.stop)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=httpx.Timeout(30.0)))
        postgres = Lazy(_pool_factory(settings), _close_pool)
        stack.push_async_callback(postgres.close)
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
        stack.push_async_callback(redis.aclose)
        switches = kill_switches or RedisKillSwitches(redis)
        tools = build_registry(postgres, http, settings)
        policies = policies_from(settings.tenant_policies)
        cache = build_plan_cache(settings, postgres)
        if (close_cache := getattr(cache, "close", None)) is not None:
            stack.push_async_callback(close_cache)  # the semantic cache's lookup pool
        plans = PlanSource(
            cache,
            planner or build_planner(settings),
            RuleBasedPlanner(policies),
            tools,
            switches,
            policies,
        )
        await plans.warm_up()
        yield SagaActivities(appender, tools, plans, switches, policies=policies)


def activity_methods(acts: SagaActivities) -> list[Callable[..., object]]:
    """Every activity the workflow calls."""
    return [
        acts.assess_goal,
        acts.make_plan,
        acts.run_step,
        acts.record_step_failure,
        acts.compensate_step,
        acts.request_approval,
        acts.record_approval_timeout,
        acts.record_approval_withdrawn,
        acts.finish_run,
    ]


# A run's workflow tasks go to the worker that last ran it (its sticky queue); when that
# worker is gone they move to the shared queue after this long (SDK default: 10 s).
STICKY_TIMEOUT = timedelta(seconds=3)
# On SIGTERM, steps in flight get this long to finish before they are cancelled.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)


def build_worker(client: Client, settings: Settings, acts: SagaActivities) -> Worker:
    """A worker serving ``AgentWorkflow`` and its activities on the settings' task queue."""
    write_bytecode(AgentWorkflow)
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[AgentWorkflow],
        activities=activity_methods(acts),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        interceptors=[MetricsInterceptor()],  # tracing comes with the client's interceptors
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        workflow_runner=SandboxedWorkflowRunner(restrictions=WORKFLOW_RESTRICTIONS),
    )


# The workflow's pure, deterministic dependencies, imported once for the process. The
# workflow's own ``imports_passed_through`` block does not cover ``from sagas import
# messages``: without this, the sandbox re-executed sagas.messages (its dataclasses)
# for every run, a seventh of the worker's CPU (py-spy, README "Throughput").
WORKFLOW_RESTRICTIONS = SandboxRestrictions.default.with_passthrough_modules(
    "domain", "sagas.messages", "sagas.options", "sagas.compensation", "sagas.plan",
    "sagas.activities", "pydantic",
)  # fmt: skip


def write_bytecode(*workflows: type) -> None:
    """Write the bytecode of the workflows' own modules, which the sandbox imports afresh
    for every workflow run. Without it on disk (``PYTHONDONTWRITEBYTECODE``, set in the
    Docker image and on these machines, or a read-only install) every run compiled
    ``sagas/workflow.py`` from source: 4.5 ms of CPU, and half of the sandbox's time
    creating a workflow (py-spy, README "Throughput"). A folder that cannot be written
    gets the bytecode in a private ``sys.pycache_prefix`` instead."""
    for workflow_type in workflows:
        source = sys.modules[workflow_type.__module__].__file__
        if source is None or not source.endswith(".py") or _fresh_bytecode(source):
            continue
        try:
            py_compile.compile(source, doraise=True)
        except (OSError, py_compile.PyCompileError):
            if sys.pycache_prefix is not None:
                raise
            sys.pycache_prefix = tempfile.mkdtemp(prefix="omnihub-bytecode-")
            py_compile.compile(source, doraise=True)


def _fresh_bytecode(source: str) -> bool:
    cached = Path(importlib.util.cache_from_source(source))
    return cached.exists() and cached.stat().st_mtime >= Path(source).stat().st_mtime


async def connect(settings: Settings) -> Client:
    """A Temporal client for the settings' address and namespace, sealing payloads with
    the runs' data keys (:mod:`apps.temporal_client`)."""
    return await temporal_client.connect(settings)


async def migrate_tool_tables(settings: Settings) -> list[str]:
    """Apply the saga tool migrations (0300-0399); idempotent and concurrency-safe."""
    conn = await asyncpg.connect(settings.postgres_dsn, timeout=10)
    try:
        return await apply_migrations(conn, select=lambda mig: 300 <= mig.number <= 399)
    finally:
        await conn.close()


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set, then finish in-flight tasks and exit."""
    applied = await migrate_tool_tables(settings)
    if applied:
        log.info("applied tool migrations: %s", ", ".join(applied))
    client = await connect(settings)
    try:
        async with saga_activities(settings) as acts:
            worker = build_worker(client, settings, acts)
            async with worker:
                log.info("worker serving task queue %s", settings.temporal_task_queue)
                mark_ready()
                await stop.wait()
    finally:
        await temporal_client.release(client)


def _pool_factory(settings: Settings) -> Callable[[], asyncio.Future[asyncpg.Pool]]:
    async def create() -> asyncpg.Pool:
        return await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=10, timeout=5)

    return create  # type: ignore[return-value]


async def _close_pool(pool: asyncpg.Pool) -> None:
    await pool.close()


def register(sub: Any) -> None:
    """``omnihub worker run``."""
    worker = sub.add_parser("worker", help="the Temporal worker for AgentWorkflow")
    cmds = worker.add_subparsers(dest="action", required=True)
    run = cmds.add_parser("run", help="serve the task queue until SIGTERM")
    run.add_argument("--task-queue", help="override OMNIHUB_TEMPORAL_TASK_QUEUE")
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.task_queue:
        settings = settings.model_copy(update={"temporal_task_queue": args.task_queue})
    return serve(lambda stop: run_worker(settings, stop), process="worker")
