"""The live stream's pure parts and its backpressure, without Kafka."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

from api.routes.stream import EventStreamResponse
from domain.live import (
    PositionSeal,
    RunFolds,
    StreamFilter,
    format_position,
    parse_position,
    split_filter,
    sse_frame,
)
from streams.live_feed import END, FeedOptions, LiveFeed
from tests.integration.test_projection_store import story


def test_positions_round_trip_and_garbage_is_none() -> None:
    pos = {("omnihub.runs.v1", 1): 7, ("omnihub.runs.v1", 0): 12}
    text = format_position(pos)
    assert text == "omnihub.runs.v1:0:12,omnihub.runs.v1:1:7"
    assert parse_position(text) == pos
    for bad in ("", None, "x", "a:b:c", "t:1:", "t::3"):
        assert parse_position(bad) is None


def test_a_sealed_position_opens_only_for_its_tenant_and_unedited() -> None:
    seal = PositionSeal("s3cret")
    pos = {("omnihub.runs.v1", 0): 12, ("omnihub.runs.v1", 1): 7}
    token = seal.seal(pos, "acme")
    assert token.startswith("p1.") and "omnihub.runs" not in token and ":" not in token
    assert seal.open(token, "acme") == pos
    assert seal.open(token, "globex") is None  # bound to the tenant
    assert PositionSeal("other").open(token, "acme") is None  # to the deployment
    edited = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    assert seal.open(edited, "acme") is None
    for bad in (None, "", "omnihub.runs.v1:0:12", "p1.", "p1.!!!", "p1." + "A" * 40):
        assert seal.open(bad, "acme") is None


def test_filter_is_one_tenant_then_runs_and_types() -> None:
    flt = StreamFilter("a", split_filter(["r1,r2"]), split_filter(["step_started"]))
    assert flt.admits("a", "r1", "step_started")
    assert not flt.admits("b", "r1", "step_started")
    assert not flt.admits("a", "r3", "step_started")
    assert not flt.admits("a", "r2", "run_completed")
    assert StreamFilter("a").admits("a", None, None)


def test_run_folds_know_a_status_only_from_a_runs_start() -> None:
    events = story("r", "t", 0)
    folds = RunFolds()
    states = [folds.apply(e) for e in events]
    assert [v.status for v, _ in states][-1] == "completed"
    assert all(known for _, known in states)
    late = RunFolds()
    view, known = late.apply(events[4])  # step_completed, nothing before it
    assert not known and view.status == "received"


def test_run_folds_are_bounded() -> None:
    folds = RunFolds(capacity=2)
    for i in range(5):
        folds.apply(story(f"r{i}", "t", 0)[0])
    assert len(folds._runs) == 2


async def test_a_full_queue_waits_for_the_client_then_cuts_it() -> None:
    options = FeedOptions(queue_max=3, stall_s=0.2)
    feed = LiveFeed("x:1", "t", None, StreamFilter("a"), None, options, str)  # type: ignore[arg-type]
    assert all([await feed._offer(sse_frame("run_event", {"n": n})) for n in range(3)])
    # A client that takes one frame makes room: the next offer waits, then goes in.
    later = asyncio.get_running_loop().call_later(0.05, feed.queue.get_nowait)
    assert await feed._offer(sse_frame("run_event", {"n": 3}))
    later.cancel()
    # One that takes nothing is cut after stall_s: its queue dropped, a cut frame, the end.
    assert not await feed._offer(sse_frame("run_event", {"n": 4}))
    assert feed.cut and feed.queue.qsize() == 2
    assert b"event: cut" in feed.queue.get_nowait()
    assert feed.queue.get_nowait() is END


def test_frames_are_one_json_line_with_their_id() -> None:
    frame = sse_frame("run_event", {"a": "x\ny"}, "t:0:1").decode()
    lines = frame.split("\n")
    assert lines[:2] == ["event: run_event", "id: t:0:1"] and frame.endswith("\n\n")
    assert json.loads(lines[2][6:]) == {"a": "x\ny"}


class Lease:
    """A stream lease that is never lost and records its release."""

    renew_every_s = 60.0

    def __init__(self) -> None:
        self.released: list[bool] = []

    async def renew(self) -> bool:
        return True

    async def release(self) -> None:
        self.released.append(True)


async def test_a_write_that_never_finishes_ends_the_response() -> None:
    lease = Lease()

    async def frames() -> AsyncIterator[bytes]:
        while True:
            yield b"data: x\n\n"

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()
        return {}

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if len(sent) > 3:
            await asyncio.Event().wait()  # the client stopped reading

    response = EventStreamResponse(frames(), 0.2, lease)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        await response({"type": "http"}, receive, send)
    assert lease.released == [True] and len(sent) == 4
