"""What the access log adds to a request, beside the bare ASGI call it wraps.

Calls an ASGI app in-process (no socket, no server: only the middleware's own cost
shows) for a FastAPI endpoint that does no work: bare; with
:class:`api.access_log.AccessLogMiddleware` and the logger off; and with it on, writing
JSON lines (:class:`omnihub.logs.JsonFormatter`) to /dev/null. Prints microseconds per
request for each and a final JSON line. ``python -m bench.bench_access_log [N]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from typing import Any

from fastapi import FastAPI, Response

from api.access_log import AccessLogMiddleware, log
from omnihub.logs import JsonFormatter

KEY = b"Bearer omh_abcd1234_" + b"s" * 43


def _app(with_log: bool) -> Any:
    app = FastAPI()

    @app.get("/api/v1/runs/{run_id}")
    async def run(run_id: str) -> Response:
        return Response(b"{}", media_type="application/json")

    if with_log:
        app.add_middleware(AccessLogMiddleware)
    return app


async def _per_request_us(app: Any, n: int) -> float:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": "/api/v1/runs/r1", "raw_path": b"/api/v1/runs/r1",
        "query_string": b"", "root_path": "", "server": ("127.0.0.1", 80),
        "headers": [(b"host", b"bench"), (b"authorization", KEY)],
    }  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(200):  # warm up (route compilation, first-call caches)
        await app(dict(scope), receive, send)
    started = time.perf_counter()
    for _ in range(n):
        await app(dict(scope), receive, send)
    return (time.perf_counter() - started) / n * 1e6


async def main(n: int, rounds: int = 3) -> dict[str, float]:
    """Each variant's microseconds per request: the best of ``rounds`` interleaved runs
    (the machine is shared; the best run is the one least disturbed)."""
    bare, logged = _app(False), _app(True)
    figures: dict[str, float] = {}
    for _ in range(rounds):
        for name, app, level in (
            ("bare_us", bare, logging.WARNING),
            ("middleware_logger_off_us", logged, logging.WARNING),
            ("middleware_json_line_us", logged, logging.INFO),
        ):
            log.setLevel(level)
            took = await _per_request_us(app, n)
            figures[name] = min(took, figures.get(name, took))
    return figures


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with open(os.devnull, "w") as devnull:
        sink = logging.StreamHandler(devnull)
        sink.setFormatter(JsonFormatter())
        log.addHandler(sink)
        log.propagate = False
        result = asyncio.run(main(count))
    for name, value in result.items():
        extra = value - result["bare_us"]
        print(f"{name:<28} {value:8.1f} us/request  ({extra:+.1f} beside bare)")
    print(json.dumps({"bench": "access_log", "requests": count, **result}))
