"""``GET /api/v1/stream``: the caller's run events as Server-Sent Events, from Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Query, Request, Response
from starlette.types import Receive, Scope, Send

from api.deps import AppState, StateDep
from api.problems import Problem
from api.routes.runs import RunReader
from domain.live import StreamFilter, parse_position, split_filter, sse_frame
from streams.live_feed import FeedOptions, LiveFeed
from streams.topics import Topic, topic_name

router = APIRouter(tags=["stream"])


class StreamSlots:
    """How many streams each key has open in this process, within a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, key_id: str) -> Callable[[], None]:
        """Take one of ``key_id``'s slots (or raise a 429 problem); call the result to
        give it back (once)."""
        if self._open.get(key_id, 0) >= self.limit:
            raise Problem(
                429,
                "too-many-streams",
                f"more than {self.limit} open streams for this key",
                headers={"Retry-After": "5"},
            )
        self._open[key_id] = self._open.get(key_id, 0) + 1
        given_back = False

        def give_back() -> None:
            nonlocal given_back
            if not given_back:
                given_back = True
                self._open[key_id] -= 1
                if not self._open[key_id]:
                    del self._open[key_id]

        return give_back


def slots_of(request: Request, state: AppState) -> StreamSlots:
    """The app's stream slots, made on first use."""
    slots: StreamSlots | None = getattr(request.app.state, "stream_slots", None)
    if slots is None:
        slots = request.app.state.stream_slots = StreamSlots(state.settings.stream_max_per_key)
    return slots


class EventStreamResponse(Response):
    """An ASGI response writing ``frames``; a write slower than ``send_timeout_s`` (the
    client stopped reading and the socket is full) ends it, as does a disconnect."""

    def __init__(
        self, frames: AsyncIterator[bytes], send_timeout_s: float, on_close: Callable[[], None]
    ) -> None:
        super().__init__(
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )
        self._frames = frames
        self._timeout = send_timeout_s
        self._on_close = on_close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        writer = asyncio.create_task(self._write(send))
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait({writer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (writer, gone):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            closer = getattr(self._frames, "aclose", None)
            if closer is not None:  # the feed's Kafka consumer stops here
                with contextlib.suppress(Exception):
                    await closer()
            self._on_close()

    async def _write(self, send: Send) -> None:
        async for frame in self._frames:
            async with asyncio.timeout(self._timeout):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


@router.get(
    "/stream",
    response_model=None,
    responses={
        200: {
            "description": "Server-Sent Events until the client leaves or is cut.",
            # Each frame's data is a JSON object: ready, run_event, heartbeat or cut.
            "content": {"text/event-stream": {"schema": {"type": "object"}}},
        }
    },
)
async def stream(
    request: Request,
    state: StateDep,
    p: RunReader,
    run_id: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies it
    event_type: Annotated[list[str], Query()] = [],  # noqa: B006
    last_event_id: Annotated[str | None, Header()] = None,
    since: Annotated[str | None, Query(description="a position, as Last-Event-ID")] = None,
) -> Any:
    """The caller's run events live (Server-Sent Events), optionally of some runs and types.

    Each frame's ``id`` is the log position after it (``topic:partition:offset`` per
    partition); send it back as ``Last-Event-ID`` to resume. Frames: ``ready``,
    ``run_event`` (the event and the run's status after it), ``heartbeat`` and ``cut``
    (the client fell too far behind; reconnect).
    """
    flt = StreamFilter(p.tenant_id, split_filter(run_id), split_filter(event_type))
    start = parse_position(last_event_id or since)
    settings = state.settings
    feed = LiveFeed(
        settings.kafka_bootstrap,
        topic_name(settings, Topic.RUNS),
        state.codec,
        flt,
        start,
        FeedOptions(
            settings.stream_queue_max, settings.stream_heartbeat_s, settings.stream_send_timeout_s
        ),
        state.privacy,
    )
    give_back = slots_of(request, state).take(p.key_id)  # a refusal is a plain 429
    return EventStreamResponse(_frames(feed), settings.stream_send_timeout_s, give_back)


async def _frames(feed: LiveFeed) -> AsyncIterator[bytes]:
    try:
        async with feed:
            async for frame in feed.frames():
                yield frame
    except (KafkaError, OSError) as exc:
        yield sse_frame("error", {"detail": f"log unavailable: {exc!r}"})
