"""The Temporal dev server's SQLite, default vs tuned (WAL, synchronous=normal).

Starts two private dev servers one after the other (same binary, same flags as the
stack's but the pragmas), runs the bare three-no-op-activity workflow N at once on one
worker against each, and checks that the tuned one still has its workflows after a
restart. Prints a line per setting and a final JSON line.

    .venv/bin/python bench/bench_temporal_sqlite.py [--runs 100]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.client import Client

from bench.bare import bare_runs_per_s, bare_worker
from infra.backing import TEMPORAL_SQLITE_PRAGMAS, sqlite_pragma_args, temporal_binary
from infra.launch import free_port, running, wait_for_port


@contextlib.contextmanager
def dev_server(db: Path, pragmas: dict[str, str]) -> Iterator[str]:
    """A ``temporal server start-dev`` on free ports over ``db``; yields its address."""
    port, http, metrics = free_port(), free_port(), free_port()
    argv = [str(temporal_binary()), "server", "start-dev", "--headless", "--ip", "127.0.0.1",
            "--port", str(port), "--http-port", str(http), "--metrics-port", str(metrics),
            "--db-filename", str(db), "--log-level", "warn",
            *sqlite_pragma_args(pragmas)]  # fmt: skip
    log = db.with_suffix(".log")
    with running(argv, {}, log, grace_s=10) as proc:
        wait_for_port(port, proc, log, timeout_s=60)
        yield f"127.0.0.1:{port}"


async def connect(address: str) -> Client:
    for _ in range(50):  # the port opens before the namespace is ready
        try:
            return await Client.connect(address)
        except RuntimeError:
            await asyncio.sleep(0.2)
    return await Client.connect(address)


async def rate(address: str, runs: int) -> tuple[float, str]:
    """Bare runs/s against the server at ``address``; one finished workflow's id."""
    client = await connect(address)
    queue = f"sqlite-{uuid.uuid4().hex[:6]}"
    async with bare_worker(client, queue, 50):
        await bare_runs_per_s(client, queue, 5)  # warm-up
        per_s, _ = await bare_runs_per_s(client, queue, runs)
        wid = f"kept-{uuid.uuid4()}"
        await client.execute_workflow("BareWorkflow", id=wid, task_queue=queue)
    return per_s, wid


async def main(runs: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="temporal-sqlite-"))
    out: dict[str, object] = {"benchmark": "temporal_sqlite", "runs": runs}
    for name, pragmas in (("default", {}), ("wal", TEMPORAL_SQLITE_PRAGMAS)):
        db = folder / f"{name}.db"
        with dev_server(db, pragmas) as address:
            per_s, wid = await rate(address, runs)
        with dev_server(db, pragmas) as address:  # restarted: is the workflow still there?
            described = await (await connect(address)).get_workflow_handle(wid).describe()
        kept = described.status is not None and described.status.name == "COMPLETED"
        out[f"{name}_runs_per_s"], out[f"{name}_kept_across_restart"] = round(per_s, 2), kept
        print(f"{name:8} {per_s:6.2f} bare runs/s; workflow kept across restart: {kept}")
    out["wal_gain"] = round(float(out["wal_runs_per_s"]) / float(out["default_runs_per_s"]), 2)  # type: ignore[arg-type]
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    asyncio.run(main(parser.parse_args().runs))
