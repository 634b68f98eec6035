"""``GET /api/v1/stream`` against the real stack: Kafka in, Server-Sent Events out."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain import ids
from domain.events import GoalReceived
from infra.launch import running_api
from infra.stack import StackConfig
from tests.e2e.gateway_stack import CliKey, cli_key, gateway_env, running_processor
from tests.e2e.test_projection_api import settings_of
from tests.integration.test_projection_store import append, story


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_RATE_LIMIT_PER_MINUTE="100000",
        OMNIHUB_CONCURRENCY_LIMIT="50",
        OMNIHUB_STREAM_MAX_PER_KEY="3",
        OMNIHUB_STREAM_HEARTBEAT_S="1",
        OMNIHUB_STREAM_QUEUE_MAX="16",
        OMNIHUB_STREAM_SEND_TIMEOUT_S="2",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("stream-api")
    with running_processor(env, logs), running_api(env, logs) as url:
        yield url


@pytest.fixture(scope="module")
def keys(api: str, env: dict[str, str]) -> dict[str, CliKey]:
    return {t: cli_key(env, t, "read") for t in ("tenant-a", "tenant-b")}


class Frames:
    """The frames of one open stream, parsed as they arrive."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout_s: float = 30.0) -> dict[str, Any]:
        frame: dict[str, Any] = {}
        async with asyncio.timeout(timeout_s):
            async for line in self._lines:
                if not line:
                    if frame:
                        return frame
                    continue
                field, _, value = line.partition(": ")
                frame[field] = json.loads(value) if field == "data" else value
        raise AssertionError("stream ended")

    async def until(self, kind: str, ok: Any = lambda f: True) -> dict[str, Any]:
        while True:
            frame = await self.next()
            if frame["event"] == kind and ok(frame):
                return frame


@asynccontextmanager
async def open_stream(
    url: str, key: CliKey, headers: dict[str, str] | None = None, **params: Any
) -> AsyncIterator[tuple[httpx.Response, Frames]]:
    auth = {"Authorization": f"Bearer {key.key}", **(headers or {})}
    async with (
        httpx.AsyncClient(base_url=url, timeout=60) as client,
        client.stream("GET", "/api/v1/stream", params=params, headers=auth) as response,
    ):
        frames = Frames(response)
        if response.status_code == 200:
            assert (await frames.next())["event"] == "ready"
        yield response, frames


async def test_stream_carries_the_tenants_run_events_with_the_folded_status(
    api: str, keys: dict[str, CliKey], env: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    mine, theirs = story(f"s-{tag}-a", "tenant-a", 0), story(f"s-{tag}-b", "tenant-b", 0)
    async with open_stream(api, keys["tenant-a"]) as (response, frames):
        assert response.headers["content-type"].startswith("text/event-stream")
        await append(settings_of(env), theirs + mine)
        seen = [await frames.until("run_event") for _ in mine]
    assert [f["data"]["event_id"] for f in seen] == [e.envelope.event_id for e in mine]
    assert {f["data"]["run_id"] for f in seen} == {f"s-{tag}-a"}  # never tenant-b's
    assert [f["data"]["run"]["status"] for f in seen][-1] == "completed"
    assert seen[2]["data"]["run"]["status"] == "planned"
    assert all(f["id"].startswith("p1.") for f in seen)


async def test_stream_filters_by_run_and_type_and_resumes_from_last_event_id(
    api: str, keys: dict[str, CliKey], env: dict[str, str]
) -> None:
    tag = uuid.uuid4().hex[:8]
    one, other = story(f"f-{tag}-1", "tenant-a", 0), story(f"f-{tag}-2", "tenant-a", 0)
    types = "step_started,run_completed"
    async with open_stream(api, keys["tenant-a"], run_id=f"f-{tag}-1", event_type=types) as (
        _,
        frames,
    ):
        await append(settings_of(env), other + one)
        first = await frames.until("run_event")
        second = await frames.until("run_event")
    assert [first["data"]["event_type"], second["data"]["event_type"]] == [
        "step_started",
        "run_completed",
    ]
    assert first["data"]["run_id"] == second["data"]["run_id"] == f"f-{tag}-1"
    # Resume after the first frame: the second comes again, and nothing before it.
    resume = {"Last-Event-ID": first["id"]}
    async with open_stream(api, keys["tenant-a"], resume, run_id=f"f-{tag}-1") as (_, frames):
        again = await frames.until("run_event")
        assert again["data"]["event_type"] == "step_completed"
        last = await frames.until("run_event")
        assert last["data"]["event_id"] == second["data"]["event_id"]
    # Ids are sealed: no offsets to read, and another tenant's copy resumes nothing.
    assert first["id"].startswith("p1.") and ":" not in first["id"]
    foreign = {"Last-Event-ID": first["id"]}
    async with open_stream(api, keys["tenant-b"], foreign) as (response, frames):
        assert response.status_code == 200  # from the log's end, as with no id at all
        await append(settings_of(env), story(f"f-{tag}-3", "tenant-b", 0)[:1])
        fresh = await frames.until("run_event")
        assert fresh["data"]["run_id"] == f"f-{tag}-3"


async def test_heartbeats_and_a_limit_of_streams_per_key(api: str, keys: dict[str, CliKey]) -> None:
    key = keys["tenant-b"]
    async with (
        open_stream(api, key) as (_, one),
        open_stream(api, key) as (_, _two),
        open_stream(api, key) as (_, _three),
    ):
        beat = await one.until("heartbeat")
        assert beat["id"] == beat["data"]["position"]
        async with open_stream(api, key) as (refused, _):
            assert refused.status_code == 429
            assert (await refused.aread()) and "too-many-streams" in refused.text
    async with open_stream(api, key) as (again, _):  # the slots were given back
        assert again.status_code == 200


async def test_stream_needs_a_key_with_runs_read(api: str) -> None:
    async with httpx.AsyncClient(base_url=api) as client:
        assert (await client.get("/api/v1/stream")).status_code == 401


async def test_a_client_that_stops_reading_is_cut(
    api: str, keys: dict[str, CliKey], env: dict[str, str]
) -> None:
    """A client that never reads: the server's writes stall, its queue fills, and the
    stream is ended instead of buffered (the connection closes)."""
    host, port = api.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    sock.connect((host, int(port)))
    request = (
        f"GET /api/v1/stream HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Bearer {keys['tenant-a'].key}\r\n\r\n"
    )
    sock.sendall(request.encode())
    await asyncio.sleep(2)  # the stream is open and positioned
    tag = uuid.uuid4().hex[:8]
    padding = {"note": "x" * 1500}
    events = [
        GoalReceived(
            ids.envelope(
                GoalReceived,
                run_id=f"slow-{tag}-{i}",
                tenant_id="tenant-a",
                actor="test",
                correlation_id=tag,
            ),
            "g",
            padding,
            None,
        )
        for i in range(4000)
    ]
    await append(settings_of(env), events)  # ~7 MB of frames for a client reading nothing
    await asyncio.sleep(5)
    sock.settimeout(30)
    received = b""
    while chunk := await asyncio.to_thread(sock.recv, 65536):  # b"": the server closed it
        received += chunk
    sock.close()
    print(f"slow client: {len(received)} bytes before the stream was ended")
    assert received.startswith(b"HTTP/1.1 200") and b"event: ready" in received
    assert len(received) < 4_500_000  # far less than was written: the rest never queued
