"""Goal ingestion throughput: HTTP with durable appends vs a bare aiokafka producer.

Both sides append the same number of ``goal_received`` events with the same producer
settings (idempotent, acks=all) and the same concurrency, in one run, so the ratio
shows what the HTTP layer costs. Prints a table and a final JSON line.

    .venv/bin/python bench/bench_ingest.py [--seconds 10] [--concurrency 32]

The HTTP load comes from ``wrk`` (Debian package) when it is installed, since a Python
client on the same two cores would measure itself; otherwise from httpx with N goals.

Uses the stack named by OMNIHUB_STATE_DIR / OMNIHUB_STACK_PORT_OFFSET (the dev stack
by default), bringing its servers up if needed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain import ids
from domain.events import GoalReceived
from infra.backing import SERVICES
from infra.launch import running, running_api
from infra.stack import StackConfig, up
from omnihub.settings import Settings
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.producer import producer_config
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_workers(
    n: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Call ``one(i)`` n times from ``concurrency`` workers; (seconds, latencies)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            started = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


async def bench_http(url: str, key: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(
        base_url=url, limits=limits, timeout=30, headers=headers
    ) as client:
        body = {"tenant_id": "bench", "goal": "Book flight to Paris", "context": {"k": "v"}}
        for _ in range(50):  # warm-up: connections, producer metadata
            (await client.post("/api/v1/goals", json=body)).raise_for_status()

        async def post(i: int) -> None:
            # The server may close a kept-alive connection under a request (httpx.ReadError,
            # the crash seen without wrk): retry with the same Idempotency-Key, so the goal
            # is still appended once.
            headers = {"Idempotency-Key": uuid.uuid4().hex}
            for attempt in range(5):
                try:
                    r = await client.post("/api/v1/goals", json=body, headers=headers)
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
                    await asyncio.sleep(0.05 * (attempt + 1))
            else:
                raise RuntimeError("the API closed the connection 5 times in a row")
            if r.status_code != 202:
                raise RuntimeError(f"{r.status_code} {r.text}")

        return await run_workers(n, concurrency, post)


async def bench_bare(settings: Settings, n: int, concurrency: int) -> tuple[float, list[float]]:
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    topic = topic_name(settings, Topic.RUNS)
    producer = AIOKafkaProducer(**producer_config(settings))
    await producer.start()

    def event(i: int) -> bytes:
        run_id = str(uuid.uuid4())
        env = ids.envelope(
            GoalReceived, run_id=run_id, tenant_id="bench", actor="bench", correlation_id=run_id
        )
        return codec.encode(GoalReceived(env, "Book flight to Paris", {"k": "v"}))

    try:
        for i in range(50):
            await producer.send_and_wait(topic, event(i), key=b"warm")

        async def send(i: int) -> None:
            value = event(i)
            await producer.send_and_wait(topic, value, key=value[-16:])

        return await run_workers(n, concurrency, send)
    finally:
        await producer.stop()


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"tenant_id":"bench","goal":"Book flight to Paris","context":{"k":"v"}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests":%d,"seconds":%f,"p50_us":%d,"p99_us":%d,'
    .. '"errors":%d}\\n', summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
"""


def bench_wrk(url: str, key: str, seconds: int, concurrency: int) -> dict[str, float]:
    """Drive the API with wrk; its request count, duration and latency percentiles."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT.replace("%(key)s", key))
    argv = [
        "wrk",
        "-t",
        "1",
        "-c",
        str(concurrency),
        "-d",
        f"{seconds}s",
        "--latency",
        # wrk's default 2 s timeout drops the slowest requests from the percentiles (and
        # counts them as errors): a loaded API's tail is latency to report, not a failure
        "--timeout",
        "30s",
        "-s",
        script.name,
        f"{url}/api/v1/goals",
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    result: dict[str, float] = json.loads(line[4:])
    if result["errors"]:
        raise RuntimeError(f"{result['errors']} requests were not accepted:\n{out}")
    return result


@contextlib.contextmanager
def gateway_processor(env: dict[str, str], log: Path) -> Iterator[None]:
    """The key projection's processor, so the bench's API key is known to the API."""
    with running([sys.executable, "-m", "apps.cli", "gateway", "run"], env, log):
        yield


def create_key(env: dict[str, str], scopes: str = "goals:write") -> str:
    """A key from ``omnihub keys create`` (it waits for the projection)."""
    deadline = time.monotonic() + 90
    while True:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "apps.cli",
                "keys",
                "create",
                "--tenant",
                "bench",
                "--scopes",
                scopes,
            ],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode == 0:
            fields = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
            return fields["key"].strip()
        if time.monotonic() > deadline:
            raise RuntimeError(f"cannot create a key:\n{done.stdout}{done.stderr}")
        time.sleep(1)


def summary(name: str, n: int, seconds: float, latencies: list[float]) -> dict[str, float]:
    return {
        f"{name}_per_s": round(n / seconds, 1),
        f"{name}_p50_ms": round(statistics.median(latencies) * 1000, 2),
        f"{name}_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration")
    parser.add_argument("--goals", type=int, default=3000, help="without wrk: goals to post")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    cfg = StackConfig.from_env()
    up(cfg, [s.name for s in SERVICES])
    tag = uuid.uuid4().hex[:6]
    env = {
        **cfg.client_env(),
        "OMNIHUB_TOPIC_PREFIX": f"bench{tag}",
        "OMNIHUB_PROJECTIONS_SCHEMA": f"bench_{tag}",
        # The bench measures ingestion, not the per-key limits: lift them for its key.
        "OMNIHUB_RATE_LIMIT_PER_MINUTE": "100000000",
        "OMNIHUB_CONCURRENCY_LIMIT": "10000",
        "OMNIHUB_DEFAULT_TIER": "enterprise",  # no monthly goal quota
    }
    os.environ.update(env)
    settings = Settings()
    await ensure_declared_topics(settings)

    result: dict[str, Any] = {"benchmark": "ingest", "concurrency": args.concurrency}
    logs = Path(tempfile.mkdtemp())
    with gateway_processor(env, logs / "gateway.log"), running_api(env, logs) as url:
        key = create_key(env)
        if shutil.which("wrk"):
            wrk = bench_wrk(url, key, args.seconds, args.concurrency)
            goals = int(wrk["requests"])
            result |= {
                "load_generator": "wrk",
                "http_per_s": round(goals / wrk["seconds"], 1),
                "http_p50_ms": wrk["p50_us"] / 1000,
                "http_p99_ms": wrk["p99_us"] / 1000,
            }
        else:
            goals = args.goals
            http_s, http_lat = await bench_http(url, key, goals, args.concurrency)
            result |= {"load_generator": "httpx"} | summary("http", goals, http_s, http_lat)
    bare_s, bare_lat = await bench_bare(settings, goals, args.concurrency)
    result |= {"goals": goals} | summary("bare", goals, bare_s, bare_lat)
    result["http_to_bare_ratio"] = round(
        float(result["http_per_s"]) / float(result["bare_per_s"]),
        3,
    )
    print(f"{'':8}{'per s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for side in ("http", "bare"):
        print(
            f"{side:8}{result[f'{side}_per_s']:>10}{result[f'{side}_p50_ms']:>10}"
            f"{result[f'{side}_p99_ms']:>10}"
        )
    print(
        f"HTTP ingestion runs at {float(result['http_to_bare_ratio']):.0%} "
        "of the bare producer's rate for the same number of durable appends"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main())
