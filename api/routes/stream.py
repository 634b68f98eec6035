"""``GET /api/v1/stream``: the caller's run events as Server-Sent Events, from Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header, Query, Request, Response
from redis.exceptions import RedisError
from starlette.types import Receive, Scope, Send

from api.deps import AppState, StateDep
from api.problems import Problem
from api.routes.runs import RunReader
from api.stream_leases import StreamLease, StreamLeases
from domain.live import PositionSeal, StreamFilter, split_filter, sse_frame
from streams.live_feed import FeedOptions, LiveFeed
from streams.topics import Topic, topic_name

router = APIRouter(tags=["stream"])


def leases_of(request: Request, state: AppState) -> StreamLeases:
    """The app's stream leases, made on first use."""
    leases: StreamLeases | None = getattr(request.app.state, "stream_leases", None)
    if leases is None:
        leases = StreamLeases(state.redis, state.settings.stream_max_per_key)
        request.app.state.stream_leases = leases
    return leases


def seal_of(request: Request, state: AppState) -> PositionSeal:
    """The app's position seal, made on first use."""
    seal: PositionSeal | None = getattr(request.app.state, "position_seal", None)
    if seal is None:
        seal = request.app.state.position_seal = PositionSeal(state.settings.secret_key)
    return seal


class EventStreamResponse(Response):
    """An ASGI response writing ``frames``; a write slower than ``send_timeout_s`` (the
    client stopped reading and the socket is full) ends it, as does a disconnect."""

    def __init__(
        self, frames: AsyncIterator[bytes], send_timeout_s: float, lease: StreamLease
    ) -> None:
        super().__init__(
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )
        self._frames = frames
        self._timeout = send_timeout_s
        self._lease = lease

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        writer = asyncio.create_task(self._write(send))
        gone = asyncio.create_task(_disconnected(receive))
        keeper = asyncio.create_task(_keep(self._lease))
        tasks = {writer, gone, keeper}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            closer = getattr(self._frames, "aclose", None)
            if closer is not None:  # the feed's Kafka consumer stops here
                with contextlib.suppress(Exception):
                    await closer()
            with contextlib.suppress(Exception):  # else it lapses by itself
                await self._lease.release()

    async def _write(self, send: Send) -> None:
        async for frame in self._frames:
            async with asyncio.timeout(self._timeout):
                await send({"type": "http.response.body", "body": frame, "more_body": True})
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _keep(lease: StreamLease) -> None:
    """Renew the stream's lease while it runs; returning (the lease was lost) ends it."""
    while True:
        await asyncio.sleep(lease.renew_every_s)
        with contextlib.suppress(RedisError):  # Redis away a moment: try again
            if not await lease.renew():
                return


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

    Each frame's ``id`` is the log position after it, sealed (an opaque token: the log
    is shared by every tenant); send it back as ``Last-Event-ID`` to resume. Frames: ``ready``,
    ``run_event`` (the event and the run's status after it), ``heartbeat`` and ``cut``
    (the client fell too far behind; reconnect).
    """
    flt = StreamFilter(p.tenant_id, split_filter(run_id), split_filter(event_type))
    seal = seal_of(request, state)
    start = seal.open(last_event_id or since, p.tenant_id)
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
        lambda position: seal.seal(position, p.tenant_id),
        state.privacy,
    )
    leases = leases_of(request, state)
    try:
        lease = await leases.take(p.key_id)
    except RedisError as exc:
        raise Problem(
            503, "limiter-unavailable", "cannot count open streams", headers={"Retry-After": "5"}
        ) from exc
    if lease is None:
        raise Problem(
            429,
            "too-many-streams",
            f"more than {leases.limit} open streams for this key",
            headers={"Retry-After": "5"},
        )
    return EventStreamResponse(_frames(feed), settings.stream_send_timeout_s, lease)


async def _frames(feed: LiveFeed) -> AsyncIterator[bytes]:
    try:
        async with feed:
            async for frame in feed.frames():
                yield frame
    except (KafkaError, OSError) as exc:
        yield sse_frame("error", {"detail": f"log unavailable: {exc!r}"})
