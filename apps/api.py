"""The API process: ``omnihub api run`` (uvicorn on ``apps.api:create_app --factory``).

Its composition root: every client the routes use is built here, and connected in the
lifespan; the routes themselves (``api/``) only append events and read projections.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI
from redis.asyncio import Redis
from temporalio.client import Client as TemporalClient

from api import dashboard, docs, openapi, problems, telemetry
from api.access_log import AccessLogMiddleware
from api.body_limit import BodyLimitMiddleware
from api.deps import AppState
from api.edge import EdgeMiddleware
from api.idempotency import RedisIdempotencyStore
from api.routes import (
    admin,
    approvals,
    audit,
    decisions,
    devices,
    goals,
    goals_batch,
    health,
    keys,
    kpis,
    live,
    notifications,
    operations,
    plan_templates,
    privacy,
    runs,
    stream,
    tenant,
    wallet,
)
from api.security.services import build_security
from apps import temporal_client
from apps.runtime import setup_telemetry
from omnihub.lazy import Lazy
from omnihub.settings import Settings, get_settings
from projections.keyring import privacy_for
from projections.killswitch import CachedSwitches
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.producer import KafkaEventAppender, LogUnavailable
from streams.schema_registry import SchemaRegistry

log = logging.getLogger(__name__)


def build_state(settings: Settings) -> AppState:
    """Build (but do not connect) every client the API uses."""
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)

    async def pg_pool() -> asyncpg.Pool:
        return await asyncpg.create_pool(settings.postgres_dsn, min_size=1, max_size=10, timeout=5)

    async def close_pool(pool: asyncpg.Pool) -> None:
        await pool.close()

    async def temporal() -> TemporalClient:
        return await temporal_client.connect(settings)

    privacy = privacy_for(settings, codec.registry)
    appender = KafkaEventAppender(
        settings, codec, timeout_s=settings.append_timeout_s, privacy=privacy
    )
    postgres = Lazy(pg_pool, close_pool)
    state = AppState(
        settings=settings,
        codec=codec,
        appender=appender,
        redis=redis,
        idempotency=RedisIdempotencyStore(redis, settings.idempotency_ttl_s),
        postgres=postgres,
        temporal=Lazy(temporal, temporal_client.release),
        switches=CachedSwitches(redis, settings.killswitch_cache_ttl_s),
        privacy=privacy,
    )
    state.security = build_security(settings, redis, postgres, lambda: state.appender)
    return state


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    state: AppState = app.state.omnihub
    try:
        async with asyncio.timeout(state.settings.append_timeout_s):
            await ensure_declared_topics(state.settings)
        await state.appender.start()
    except (LogUnavailable, KafkaError, OSError, TimeoutError) as exc:
        # Start anyway: /health says Kafka is down and appends answer 503 until it is back.
        log.warning("Kafka is not reachable at start: %r", exc)
    try:
        yield
    finally:
        if state.security is not None:
            await state.security.audit.drain()
        await state.appender.stop()
        if state.privacy is not None:
            await state.privacy.close()
        await state.postgres.close()
        await state.redis.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    """The OmniHub API, wired to the services ``settings`` names."""
    settings = settings or get_settings()
    app = FastAPI(
        title="OmniHub",
        version="0.1.0",
        summary="Event-sourced orchestration of AI agent runs.",
        lifespan=lifespan,
        docs_url=None,  # api.docs serves them with local assets
        redoc_url=None,
        # api.telemetry owns the request's SERVER span and its metrics. FastAPI's own
        # telemetry would, once tracing is set up, open a second SERVER span around
        # ours and a ``fastapi.dependencies`` span per request, and it looks up the
        # global providers on every request even when none is set.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.omnihub = build_state(settings)
    problems.install(app)
    # Added last is outermost: nosniff lands on every answer, a 413 too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(EdgeMiddleware)
    docs.install(app)
    if settings.access_log:
        app.add_middleware(AccessLogMiddleware)
    telemetry.install(app)  # outermost: counts what the body limit refuses too
    app.include_router(health.router)
    app.include_router(goals.router, prefix="/api/v1")
    app.include_router(goals_batch.router, prefix="/api/v1")
    app.include_router(keys.router, prefix="/api/v1")
    app.include_router(admin.router, prefix="/api/v1")
    app.include_router(privacy.router, prefix="/api/v1")
    app.include_router(decisions.router, prefix="/api/v1")
    app.include_router(runs.router, prefix="/api/v1")
    app.include_router(approvals.router, prefix="/api/v1")
    app.include_router(kpis.router, prefix="/api/v1")
    app.include_router(live.router, prefix="/api/v1")
    app.include_router(wallet.router, prefix="/api/v1")
    app.include_router(tenant.router, prefix="/api/v1")
    app.include_router(plan_templates.router, prefix="/api/v1")
    app.include_router(stream.router, prefix="/api/v1")
    app.include_router(audit.router, prefix="/api/v1")
    app.include_router(operations.router, prefix="/api/v1")
    app.include_router(notifications.router, prefix="/api/v1")
    app.include_router(devices.router, prefix="/api/v1")
    dashboard.install(app)
    openapi.install(app)
    return app


def register(sub: Any) -> None:
    """``omnihub api run``."""
    group = sub.add_parser("api", help="the HTTP API")
    cmds = group.add_subparsers(dest="action", required=True)
    run = cmds.add_parser("run", help="serve the API with uvicorn")
    run.add_argument("--host", help="default OMNIHUB_API_HOST")
    run.add_argument("--port", type=int, help="default OMNIHUB_API_PORT")
    run.add_argument(
        "--access-log",
        action="store_true",
        help="uvicorn's text access log too (see api/access_log.py)",
    )
    run.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    import uvicorn

    settings = get_settings()
    setup_telemetry("api", settings, serve_metrics_port=False)  # /metrics is on its port
    uvicorn.run(
        "apps.api:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        access_log=args.access_log,
        log_level="warning",
        log_config=None,  # keep the process's logging (JSON lines with trace ids)
    )
    return 0
