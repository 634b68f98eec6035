"""Helpers for the saga tests: a tap on a run's events, a webhook server, a local LLM.

Everything here is real: the tap is a Kafka consumer, the servers are aiohttp apps on
127.0.0.1 with a free port.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from domain import ids
from domain.events import Event, GoalReceived
from infra.launch import omnihub_argv, running
from omnihub.settings import Settings
from projections.keyring import privacy_for
from sagas.planner import PlanRequest
from streams.codec import DecodeError, EventCodec
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def codec_for(settings: Settings) -> EventCodec:
    return EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))


async def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def goal_event(tenant: str, goal: str, run_id: str | None = None) -> GoalReceived:
    run_id = run_id or str(uuid.uuid4())
    env = ids.envelope(
        GoalReceived, run_id=run_id, tenant_id=tenant, actor="test", correlation_id=run_id
    )
    return GoalReceived(env, goal, {}, None)


class RunTap:
    """Collects the events of watched runs from the runs topic, from the moment it starts."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._codec = codec_for(settings)
        # The workers seal personal fields; the tap holds the keys, as a trusted consumer.
        self._privacy = privacy_for(settings, self._codec.registry)
        self.events: dict[str, list[Event]] = defaultdict(list)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        topic = topic_name(self._settings, Topic.RUNS)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap, enable_auto_commit=False
        )
        await consumer.start()
        # The declared partition count (streams.topics creates every topic with it).
        parts = [TopicPartition(topic, p) for p in range(self._settings.topic_partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        for tp in parts:
            await consumer.position(tp)  # fix "the end" now, before any run starts
        self._consumer = consumer
        self._task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._consumer:
            await self._consumer.stop()

    async def _pump(self) -> None:
        assert self._consumer is not None
        while True:
            batch = await self._consumer.getmany(timeout_ms=200)
            if not batch:
                continue
            for records in batch.values():
                for record in records:
                    try:
                        event = self._codec.decode(record.value or b"")
                    except DecodeError:
                        continue  # poison records are the bridge's business, not the tap's
                    event = await self._privacy.open_one(event)
                    self.events[event.envelope.run_id].append(event)
            async with self._changed:
                self._changed.notify_all()

    def types(self, run_id: str) -> list[str]:
        return [e.envelope.event_type for e in self.events[run_id]]

    async def wait_for(
        self, run_id: str, event_type: str, timeout_s: float = 60.0, count: int = 1
    ) -> list[Event]:
        """The run's events once ``count`` events of ``event_type`` have arrived."""

        def arrived() -> bool:
            return self.types(run_id).count(event_type) >= count

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(arrived), timeout_s)
            except TimeoutError:
                raise AssertionError(
                    f"{run_id}: no {event_type} within {timeout_s}s; saw {self.types(run_id)}"
                ) from None
        return list(self.events[run_id])


@asynccontextmanager
async def tapping(settings: Settings) -> AsyncIterator[RunTap]:
    tap = RunTap(settings)
    await tap.start()
    try:
        yield tap
    finally:
        await tap.stop()


@dataclass
class Hook:
    """A webhook path's scripted answers (the last one repeats) and what it received.

    It answers after ``delay_s``, or after ``method_delay_s[method]`` when that names the
    request's method; a caller that hangs up meanwhile gets no answer.
    """

    statuses: list[int] = field(default_factory=lambda: [200])
    requests: list[dict[str, Any]] = field(default_factory=list)
    delay_s: float = 0.0
    method_delay_s: dict[str, float] = field(default_factory=dict)


class WebhookServer:
    """An HTTP server on 127.0.0.1: each path answers as its :class:`Hook` says."""

    def __init__(self) -> None:
        self.hooks: dict[str, Hook] = defaultdict(Hook)
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        hook = self.hooks[request.path]
        body = await request.text()
        hook.requests.append(
            {"method": request.method, "key": request.headers.get("Idempotency-Key"), "body": body}
        )
        delay = hook.method_delay_s.get(request.method, hook.delay_s)
        if delay:
            await asyncio.sleep(delay)
        status = hook.statuses[min(len(hook.requests) - 1, len(hook.statuses) - 1)]
        return web.json_response({"path": request.path, "n": len(hook.requests)}, status=status)


ChatHandler = Callable[[dict[str, Any]], Awaitable[web.StreamResponse]]


class FakeOpenAI:
    """A local OpenAI-compatible ``/v1/chat/completions``; ``answer`` decides each reply."""

    def __init__(self, answer: ChatHandler) -> None:
        self.answer = answer
        self.requests: list[dict[str, Any]] = []
        self.server = WebhookServer()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        self.server._runner = web.AppRunner(app)
        await self.server._runner.setup()
        site = web.TCPSite(self.server._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        await self.server.stop()

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        payload = await request.json()
        self.requests.append(payload)
        return await self.answer(payload)


def completion(content: str, model: str = "planner-test") -> web.Response:
    """An OpenAI chat completion whose message is ``content``."""
    return web.json_response(
        {
            "id": "chatcmpl-" + uuid.uuid4().hex,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
    )


def plan_json(*steps: dict[str, Any]) -> str:
    return json.dumps({"steps": list(steps)})


class ScriptedPlanner:
    """Proposes the same plan for every goal: steps no rule makes (timeouts, siblings)."""

    name = "scripted"

    def __init__(self, plan: str) -> None:
        self.plan = plan

    async def propose(self, request: PlanRequest) -> Mapping[str, Any]:
        return dict(json.loads(self.plan))


@contextmanager
def omnihub_process(
    env: dict[str, str], log: Path, *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m apps.cli <args>`` with ``env`` until the block ends (SIGTERM, then kill)."""
    with running(omnihub_argv(*args), env, log, grace_s=30) as proc:
        yield proc
