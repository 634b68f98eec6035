"""Pieces of ``bench_pipeline.py``: OmniHub's processes, HTTP load, e2e offers, CPU.

Everything here drives real processes over their real interfaces (HTTP, Kafka,
Temporal); nothing is faked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.bench_ingest import bench_wrk, create_key
from infra.launch import omnihub_argv, running, running_api

GOAL = "say alpha then upper beta then say gamma"  # the rule planner's three-step run


def pct(values: Sequence[float], q: int) -> float:
    """The ``q``-th percentile (0 for no values)."""
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


@contextlib.contextmanager
def omnihub(
    env: Mapping[str, str], logs: Path, names: Sequence[str]
) -> Iterator[tuple[str, str, dict[str, psutil.Process]]]:
    """OmniHub's ``names`` processes and its API; (url, write key, processes by name)."""
    with contextlib.ExitStack() as stack:
        procs = {
            name: psutil.Process(
                stack.enter_context(
                    running(omnihub_argv(name, "run"), env, logs / f"{name}.log")
                ).pid
            )
            for name in names
        }
        url = stack.enter_context(running_api(env, logs))
        procs["api"] = listening(url)
        yield url, create_key_with(env, "write"), procs


def create_key_with(env: Mapping[str, str], scopes: str) -> str:
    """A key for the bench tenant with ``scopes`` (waits for the key projection)."""
    return create_key(dict(env), scopes)


def listening(url: str) -> psutil.Process:
    """The process listening on ``url``'s port."""
    port = int(url.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == "LISTEN" and conn.pid:
            return psutil.Process(conn.pid)
    raise RuntimeError(f"nothing listens on {url}")


def servers(state_dir: Path) -> dict[str, psutil.Process]:
    """The stack's Kafka, Postgres, Redis and Temporal processes (from their pid files)."""
    out = {}
    for name in ("kafka", "postgres", "redis", "temporal"):
        with contextlib.suppress(OSError, ValueError, KeyError, psutil.Error):
            pid = json.loads((state_dir / "run" / f"{name}.pid").read_text())["pid"]
            out[name] = psutil.Process(int(pid))
    return out


def cpu_seconds(procs: Mapping[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU seconds so far of each process (and its children)."""
    out = {}
    for name, proc in procs.items():
        try:
            total = sum(sum(p.cpu_times()[:2]) for p in [proc, *proc.children(recursive=True)])
        except psutil.Error:
            total = 0.0
        out[name] = total
    return out


def cpu_percent(
    before: Mapping[str, float], after: Mapping[str, float], wall: float
) -> dict[str, float]:
    """Percent of one core each process used between two :func:`cpu_seconds`."""
    # max(0): a server whose child exited (a Postgres backend) loses its CPU time
    return {k: round(max(0.0, 100 * (after[k] - before.get(k, 0.0)) / wall), 1) for k in after}


async def http_rate(url: str, key: str, seconds: float, concurrency: int) -> dict[str, Any]:
    """Goals/s POSTed to ``url`` by wrk (if installed) or httpx, closed loop."""
    if shutil.which("wrk"):
        wrk = await asyncio.to_thread(bench_wrk, url, key, int(seconds), concurrency)
        return {"per_s": wrk["requests"] / wrk["seconds"], "p99_ms": wrk["p99_us"] / 1000,
                "generator": "wrk", "requests": wrk["requests"]}  # fmt: skip
    return await _httpx_rate(url, key, seconds, concurrency)


async def _httpx_rate(url: str, key: str, seconds: float, concurrency: int) -> dict[str, Any]:
    lat: list[float] = []
    retried = 0
    deadline = time.perf_counter() + seconds
    async with _client(url, key, concurrency) as client:
        for _ in range(20):  # warm-up: connections, producer metadata
            await post_goal(client)

        async def loop() -> None:
            nonlocal retried
            while time.perf_counter() < deadline:
                began = time.perf_counter()
                retried += await post_goal(client) is None
                lat.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        took = time.perf_counter() - began
    return {"per_s": len(lat) / took, "p99_ms": pct(lat, 99) * 1000, "generator": "httpx",
            "retried": retried, "requests": len(lat)}  # fmt: skip


def _client(url: str, key: str, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=url, limits=limits, timeout=60,
                             headers={"Authorization": f"Bearer {key}"})  # fmt: skip


async def post_goal(client: httpx.AsyncClient) -> str | None:
    """POST one goal; its run id. A connection the server closed under a kept-alive
    request (httpx.ReadError, the crash seen without wrk) is retried with the same
    ``Idempotency-Key``, so the goal is appended once; None when it was retried."""
    headers = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"tenant_id": "bench", "goal": GOAL}
    for attempt in range(5):
        try:
            r = await client.post("/api/v1/goals", json=body, headers=headers)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
            await asyncio.sleep(0.05 * (attempt + 1))
            continue
        if r.status_code != 202:
            raise RuntimeError(f"{r.status_code} {r.text}")
        run_id: str = r.json().get("run_id", "")
        return run_id if attempt == 0 else None
    raise RuntimeError("the API closed the connection 5 times in a row")


@dataclass
class Offer:
    """One fixed-rate offer of goals and what became of them."""

    rate: float
    accepted: dict[str, float] = field(default_factory=dict)  # run id -> wall time of 202
    visible: dict[str, float] = field(default_factory=dict)  # run id -> seen completed
    ended: dict[str, float] = field(default_factory=dict)  # run id -> its ended_at


async def offer(url: str, key: str, rate: float, seconds: float, grace_s: float) -> Offer:
    """Goals at ``rate``/s (open loop) for ``seconds``; then wait up to ``grace_s`` for
    every accepted run to be visible as completed in the read API."""
    out = Offer(rate)
    async with _client(url, key, 64) as client:
        poller = asyncio.create_task(_watch(client, out))
        t0 = time.perf_counter()
        sends = []
        for i in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
            sends.append(asyncio.create_task(_accepted(client, out)))
        await asyncio.gather(*sends)
        end = time.perf_counter() + grace_s
        # The runs complete in other processes: nothing to await but the read API.
        while time.perf_counter() < end and set(out.accepted) - set(out.visible):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    return out


async def _accepted(client: httpx.AsyncClient, out: Offer) -> None:
    run_id = await post_goal(client)
    if run_id:
        out.accepted[run_id] = time.time()


async def _watch(client: httpx.AsyncClient, out: Offer) -> None:
    while True:
        r = await client.get("/api/v1/runs", params={"status": "completed", "limit": 500})
        now = time.time()
        if r.status_code == 200:
            for item in r.json()["items"]:
                run_id = item["run_id"]
                if run_id in out.accepted and run_id not in out.visible:
                    out.visible[run_id] = now
                    if item.get("ended_at"):
                        out.ended[run_id] = datetime.fromisoformat(item["ended_at"]).timestamp()
        await asyncio.sleep(0.1)


def summarize(o: Offer, seconds: float) -> dict[str, Any]:
    """Goals/s completed, e2e p50/p99 and the lag of the saga and projection stages."""
    e2e = [o.visible[r] - o.accepted[r] for r in o.visible]
    saga = [o.ended[r] - o.accepted[r] for r in o.ended]
    proj = [o.visible[r] - o.ended[r] for r in o.ended]
    # Bounded lag: the last quarter of the goals waits about as long as the first. A
    # queue that grows through the window (runs arriving faster than they finish) shows
    # as a later quarter that waits much longer, even if every run completes in the grace.
    order = sorted(o.visible, key=o.accepted.__getitem__)
    quarter = max(len(order) // 4, 1)
    early = [o.visible[r] - o.accepted[r] for r in order[:quarter]] or [0.0]
    late = [o.visible[r] - o.accepted[r] for r in order[-quarter:]] or [0.0]
    bounded = pct(late, 50) <= 2 * pct(early, 50) + 1.0
    return {
        "offered_per_s": o.rate,
        "accepted": len(o.accepted),
        "completed_visible": len(o.visible),
        "sustained": bool(o.accepted) and len(o.visible) >= 0.98 * len(o.accepted) and bounded,
        "e2e_p50_ms_first_quarter": round(pct(early, 50) * 1000, 1),
        "e2e_p50_ms_last_quarter": round(pct(late, 50) * 1000, 1),
        "goals_per_s": round(len(o.visible) / seconds, 2),
        "e2e_p50_ms": round(pct(e2e, 50) * 1000, 1),
        "e2e_p99_ms": round(pct(e2e, 99) * 1000, 1),
        "saga_lag_p99_ms": round(pct(saga, 99) * 1000, 1),  # 202 -> run_completed
        "projection_lag_p99_ms": round(pct(proj, 99) * 1000, 1),  # completed -> visible
    }
