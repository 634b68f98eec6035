"""The bare baselines every OmniHub figure stands beside, measured in the same run.

- :func:`create_app`: a FastAPI app whose one endpoint returns 202 and does no work,
  served by the same uvicorn argv as the API (:func:`running_uvicorn`): HTTP's limit;
- :func:`create_append_app`: the same endpoint that first appends the body to the runs
  topic with the API's producer settings and awaits the acknowledgement: the limit of
  a goal that is durable before its 202, with no key, limit, audit or validation;
- :func:`bare_producer_rate`: an aiokafka producer pipelining sends (no await per send)
  with OmniHub's producer settings (acks=all, idempotent): the log's limit;
- :class:`BareWorkflow`: three no-op activities on the same Temporal server and worker
  settings (the shape of temporalio/sdk-python ``scripts/run_bench.py``): Temporal's
  limit for the saga.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request, Response
from temporalio.client import Client
from temporalio.worker import Worker

from bench.bare_workflow import BareWorkflow, bare_noop
from infra.launch import free_port, running, wait_for_port
from omnihub.settings import Settings
from streams.admin import ensure_declared_topics
from streams.producer import producer_config
from streams.topics import Topic, topic_name

BODY = b'{"tenant_id":"bench","goal":"say alpha then upper beta then say gamma"}'


def create_app() -> FastAPI:
    """The bare endpoint: parse nothing, do nothing, 202."""
    app = FastAPI()

    @app.post("/api/v1/goals", status_code=202)
    async def accept() -> Response:
        return Response(status_code=202, content=b'{"accepted":true}')

    return app


def create_append_app() -> FastAPI:
    """The bare endpoint with one acks=all idempotent append per request."""
    settings = Settings()
    topic = topic_name(settings, Topic.RUNS)
    producer = AIOKafkaProducer(**producer_config(settings))

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await ensure_declared_topics(settings)
        await producer.start()
        try:
            yield
        finally:
            await producer.stop()

    app = FastAPI(lifespan=lifespan)

    @app.post("/api/v1/goals", status_code=202)
    async def accept(request: Request) -> Response:
        await producer.send_and_wait(topic, await request.body(), key=uuid.uuid4().bytes)
        return Response(status_code=202, content=b'{"accepted":true}')

    return app


@contextlib.contextmanager
def running_uvicorn(factory: str, env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """``uvicorn <factory> --factory`` with the API's own settings; yields its base URL."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log"]  # fmt: skip
    log = log_dir / f"uvicorn-{port}.log"
    with running(argv, env, log, grace_s=10) as proc:
        wait_for_port(port, proc, log, timeout_s=60)
        yield f"http://127.0.0.1:{port}"


async def bare_producer_rate(config: Mapping[str, object], topic: str, n: int) -> float:
    """Records/s of ``n`` pipelined sends (all in flight, then all acknowledged)."""
    producer = AIOKafkaProducer(**config)
    await producer.start()
    try:
        await producer.send_and_wait(topic, BODY, key=b"warm")
        started = time.perf_counter()
        futures = [await producer.send(topic, BODY, key=uuid.uuid4().bytes) for _ in range(n)]
        await asyncio.gather(*futures)
        return n / (time.perf_counter() - started)
    finally:
        await producer.stop()


def bare_worker(client: Client, queue: str, max_concurrent_activities: int) -> Worker:
    """The bare workflow's worker, with the saga worker's activity slots."""
    return Worker(
        client,
        task_queue=queue,
        workflows=[BareWorkflow],
        activities=[bare_noop],
        max_concurrent_activities=max_concurrent_activities,
    )


async def bare_runs_per_s(client: Client, queue: str, n: int) -> tuple[float, int]:
    """``n`` bare workflows started at once: (completed runs/s, completed)."""
    began = time.perf_counter()
    handles = [
        await client.start_workflow(BareWorkflow.run, id=f"bare-{uuid.uuid4()}", task_queue=queue)
        for _ in range(n)
    ]
    results = await asyncio.gather(*(h.result() for h in handles), return_exceptions=True)
    done = sum(r == 3 for r in results)
    return done / (time.perf_counter() - began), done
