"""``omnihub doctor``: is everything OmniHub needs there and as declared, and if not, what
to do about it.

It checks, with this shell's settings: Kafka (reachable; every declared topic present
with its partitions and configuration), Postgres (reachable; every migration applied and
unchanged), Redis, Temporal, the schemas (``schemas check``), and, when a model is
configured, one small call to it. Exit 1 if anything failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from omnihub.settings import Settings, get_settings


@dataclass(frozen=True)
class Finding:
    """One check: what it looked at, whether it is fine, what it saw, what to do."""

    check: str
    ok: bool
    detail: str
    fix: str = ""


Check = Callable[[Settings], Awaitable[Finding]]


def register(sub: Any) -> None:
    """Add ``doctor``."""
    doctor = sub.add_parser("doctor", help="check every dependency", description=__doc__)
    doctor.add_argument("--json", action="store_true", help="one JSON document")
    doctor.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    findings = asyncio.run(diagnose(get_settings()))
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        for f in findings:
            print(f"{'ok  ' if f.ok else 'FAIL'} {f.check:<10} {f.detail}")
            if not f.ok and f.fix:
                print(f"     {'':<10} -> {f.fix}")
    return 0 if all(f.ok for f in findings) else 1


async def diagnose(settings: Settings, timeout_s: float = 10.0) -> list[Finding]:
    """Every check, each bounded by ``timeout_s`` and never raising."""
    start = "start it (omnihub stack up {}) or set OMNIHUB_{}"
    checks: list[tuple[str, Check, str]] = [
        ("kafka", _kafka, start.format("kafka", "KAFKA_BOOTSTRAP")),
        ("postgres", _postgres, start.format("postgres", "POSTGRES_DSN")),
        ("redis", _redis, start.format("redis", "REDIS_URL")),
        ("temporal", _temporal, start.format("temporal", "TEMPORAL_ADDRESS")),
        ("schemas", _schemas, "fix the files named, then omnihub schemas release"),
        ("llm", _llm, "check OMNIHUB_LLM_MODEL, OMNIHUB_LLM_API_BASE and the provider's key"),
    ]  # fmt: skip
    return list(
        await asyncio.gather(*(_bounded(n, c, f, settings, timeout_s) for n, c, f in checks))
    )


async def _bounded(
    name: str, check: Check, fix: str, settings: Settings, timeout_s: float
) -> Finding:
    try:
        async with asyncio.timeout(timeout_s):
            return await check(settings)
    except TimeoutError:
        return Finding(name, False, f"no answer within {timeout_s:g}s", fix)
    except Exception as exc:  # a doctor reports, it does not crash
        return Finding(name, False, f"{type(exc).__name__}: {exc}"[:300], fix)


async def _kafka(settings: Settings) -> Finding:
    from aiokafka.admin import AIOKafkaAdminClient

    from streams.topics import check_topics, topic_specs

    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        problems = await check_topics(admin, topic_specs(settings))
    finally:
        await admin.close()
    if problems:
        return Finding("kafka", False, "; ".join(problems),
                       "omnihub topics creates what is missing; a changed configuration "
                       "needs kafka-configs (partitions can only grow)")  # fmt: skip
    return Finding("kafka", True, f"{settings.kafka_bootstrap}, every declared topic as declared")


async def _postgres(settings: Settings) -> Finding:
    import asyncpg

    from projections.migrate import pending_migrations

    conn = await asyncpg.connect(settings.postgres_dsn, timeout=5)
    try:
        pending = await pending_migrations(conn, settings.projections_schema)
    finally:
        await conn.close()
    if pending:
        fix = "start the gateway or projector once (they apply them at start)"
        return Finding("postgres", False, f"migrations not applied: {', '.join(pending)}", fix)
    return Finding("postgres", True, "reachable, every migration applied")


async def _redis(settings: Settings) -> Finding:
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url, socket_timeout=5)
    try:
        await redis.ping()
    finally:
        await redis.aclose()
    return Finding("redis", True, "reachable")


async def _temporal(settings: Settings) -> Finding:
    from temporalio.client import Client

    client = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    await client.service_client.check_health()
    return Finding(
        "temporal", True, f"{settings.temporal_address}, namespace {settings.temporal_namespace}"
    )


async def _schemas(settings: Settings) -> Finding:
    from streams.schema_check import check_folder

    problems = check_folder(settings.schemas_dir)
    if problems:
        return Finding("schemas", False, "; ".join(problems)[:500])
    return Finding("schemas", True, "valid, frozen where released, fully compatible")


async def _llm(settings: Settings) -> Finding:
    if not settings.llm_model:
        return Finding("llm", True, "no model configured: the rule-based planner plans")
    from sagas.llm_planner import LiteLLMPlanner

    planner = LiteLLMPlanner(
        settings.llm_model,
        api_base=settings.llm_api_base,
        api_key=settings.llm_api_key,
        timeout_s=settings.llm_timeout_s,
    )
    await planner.ping()
    return Finding("llm", True, f"{settings.llm_model} answered")
