"""The API's requests as metrics and as the first span of their trace, and ``/metrics``.

A pure ASGI middleware (no per-request task or body copy): it opens the SERVER span
every later span of the request descends from (the append, and through the record's
``traceparent`` the bridge, the workflow, the activities and the projection), and after
the response counts the request by route template and status and observes its latency.
A caller's own ``traceparent`` header is honoured, so a client can put a goal into its
trace. ``/metrics`` and ``/health`` are counted but get no span (scrapes and probes
would bury the goals).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Request, Response
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from omnihub import metrics, tracing

UNMATCHED = "unmatched"  # a path no route serves: one label, not one per raw path
_UNTRACED = ("/metrics", "/health")


def route_of(scope: Scope) -> str:
    """The matched route's template with its router's prefix (``/api/v1/runs/{run_id}``).

    An included router's route knows only its own path (``/runs/{run_id}``); the prefix
    is the request path's leading segments, which hold no parameters here."""
    template = getattr(scope.get("route"), "path", None)
    if not template:
        return UNMATCHED
    own = template.count("/")
    segments = scope["path"].rstrip("/").split("/")
    prefix = "/".join(segments[: len(segments) - own]) if len(segments) > own else ""
    return prefix + str(template)


def _caller_traceparent(scope: Scope) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == b"traceparent":
            return bytes(value)
    return None


class TelemetryMiddleware:
    """Counts, times and traces every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500  # unless a response starts: an exception escaped
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if tracing.enabled() and not scope["path"].startswith(_UNTRACED):
                await self._traced(scope, receive, send_status, lambda: status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            route = route_of(scope)
            metrics.HTTP_REQUESTS.labels(route, str(status)).inc()
            metrics.HTTP_REQUEST_DURATION.labels(route).observe(time.perf_counter() - started)

    async def _traced(self, scope: Scope, receive: Receive, send: Send, status: Any) -> None:
        method = scope.get("method", "GET")
        remote = tracing.parse_traceparent(_caller_traceparent(scope))
        with tracing.tracer().start_as_current_span(
            f"{method} {scope['path']}",
            context=tracing.context_of(remote) if remote else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope["path"]},
        ) as span:
            try:
                await self.app(scope, receive, send)
            finally:
                route, code = route_of(scope), status()
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", code)
                if code >= 500:
                    span.set_status(Status(StatusCode.ERROR))


async def metrics_endpoint(_: Request) -> Response:
    """The process's metrics in the Prometheus text format."""
    body, content_type = metrics.exposition()
    return Response(body, media_type=content_type)


def install(app: FastAPI) -> None:
    """Add the middleware (outermost, so refusals by inner middleware count too) and
    ``GET /metrics`` (left out of the OpenAPI document)."""
    app.add_middleware(TelemetryMiddleware)
    app.add_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
