"""What sealing Temporal's payloads costs: the default data converter (the baseline)
beside OmniHub's sealing one, per payload and per run.

- per payload (no servers, keys in memory and cached as in a running process): encode
  and decode of what a run's history holds (its input, a step's arguments, a step's
  result, an approval's signal), best of ``--rounds`` interleaved rounds on one core;
- per run (``--runs N``, on the stack named by OMNIHUB_STATE_DIR /
  OMNIHUB_STACK_PORT_OFFSET, brought up if needed): N three-step AgentWorkflow runs at
  once on a worker whose client seals (each run bound to a data key in Postgres, as the
  gateway binds a goal's run) beside N on a worker whose client does not, alternately,
  best of ``--rounds``.

    .venv/bin/python bench/bench_temporal_codec.py [--payloads 5000] [--runs 50] [--rounds 3]

Prints a table and a final JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google.protobuf.message import Message
from temporalio.client import Client
from temporalio.converter import DataConverter, WorkflowSerializationContext

from sagas.messages import ApprovalDecision, RunInput, RunPolicy, WireStep
from sagas.payload_codec import ENCODING, sealing_converter

GOAL = "say alpha then upper beta then say gamma"


class MemoryKeys:
    """One key for every run, as a tenant's key seals all its runs."""

    def __init__(self) -> None:
        self.key = os.urandom(32)

    async def run_key(self, run_id: str) -> tuple[str, bytes | None] | None:
        return "k-bench", self.key

    async def keys(self, key_ids: Sequence[str]) -> Mapping[str, bytes | None]:
        return {k: self.key for k in key_ids}

    async def close(self) -> None:
        return None


def samples(run_id: str) -> list[object]:
    goal = GOAL + " for " + "x" * 160  # a goal of a couple of hundred characters
    return [
        RunInput(run_id=run_id, tenant_id="t", goal=goal, goal_event_id="g", policy=RunPolicy()),
        WireStep(step_id="s1", tool="text.say", arguments_json=json.dumps({"text": goal})),
        {"value": goal.upper(), "attempt": 1},
        ApprovalDecision(
            approval_id="a1",
            step_id="s2",
            granted=True,
            approver="alice",
            reason="looks right to me",
        ),
    ]


async def per_payload(n: int, rounds: int) -> dict[str, float]:
    """The default converter's encode and decode (the baseline), and the sealing codec's
    own encode and decode of the same payloads (what sealing adds), interleaved; and a
    round trip through the whole sealing converter as a check."""
    context = WorkflowSerializationContext(namespace="default", workflow_id="run-bench")
    plain = DataConverter.default.with_context(context)
    sealed = sealing_converter(MemoryKeys()).with_context(context)
    codec = sealed.payload_codec
    assert codec is not None
    values = [samples("run-bench")[i % 4] for i in range(n)]
    hints = [type(v) for v in values]
    for v, h in zip(values[:4], hints, strict=False):  # the whole converter round-trips
        assert (await sealed.decode(await sealed.encode([v]), [h]))[0] == v
    best: dict[str, float] = {}

    def keep(key: str, seconds: float) -> None:
        best[key] = min(best.get(key, float("inf")), seconds / n * 1e6)

    for _ in range(rounds):
        t0 = time.perf_counter()
        payloads = [(await plain.encode([v]))[0] for v in values]
        t1 = time.perf_counter()
        back = [(await plain.decode([p], [h]))[0] for p, h in zip(payloads, hints, strict=True)]
        t2 = time.perf_counter()
        closed = [(await codec.encode([p]))[0] for p in payloads]
        t3 = time.perf_counter()
        opened = [(await codec.decode([p]))[0] for p in closed]
        t4 = time.perf_counter()
        assert back == values and opened == payloads
        keep("bare_encode_us", t1 - t0)
        keep("bare_decode_us", t2 - t1)
        keep("codec_seal_us", t3 - t2)
        keep("codec_open_us", t4 - t3)
    best["bytes_per_payload"] = sum(len(p.SerializeToString()) for p in payloads[:4]) / 4
    best["sealed_bytes_per_payload"] = sum(len(p.SerializeToString()) for p in closed[:4]) / 4
    return {k: round(v, 2) for k, v in best.items()}


async def per_run(runs: int, rounds: int) -> dict[str, Any]:
    from apps import temporal_client
    from apps import worker as saga_worker
    from infra.backing import SERVICES
    from infra.stack import StackConfig, up
    from omnihub.settings import Settings
    from projections.keyring import PgKeyStore
    from sagas.telemetry import client_interceptors
    from sagas.workflow import AgentWorkflow
    from streams.admin import ensure_declared_topics

    cfg = StackConfig.from_env()
    up(cfg, [s.name for s in SERVICES])
    tag = uuid.uuid4().hex[:6]
    os.environ.update({**cfg.client_env(), "OMNIHUB_TOPIC_PREFIX": f"bench{tag}"})
    sealed_s = Settings(temporal_task_queue=f"bench-sealed-{tag}")  # type: ignore[call-arg]
    bare_s = Settings(temporal_task_queue=f"bench-bare-{tag}")  # type: ignore[call-arg]
    await ensure_declared_topics(sealed_s)
    await saga_worker.migrate_tool_tables(sealed_s)
    keys = PgKeyStore(sealed_s)
    sealed = await temporal_client.connect(sealed_s, keys)
    bare = await Client.connect(
        bare_s.temporal_address,
        namespace=bare_s.temporal_namespace,
        interceptors=client_interceptors(),
    )

    async def batch(client: Client, queue: str, bind: bool, n: int = runs) -> float:
        inputs = [
            RunInput(run_id=f"bench-{uuid.uuid4()}", tenant_id="bench", goal=GOAL,
                     goal_event_id="bench-goal", policy=RunPolicy())
            for _ in range(n)
        ]  # fmt: skip
        if n == 1:
            inputs[0].run_id = f"bench-{tag}-probe"
        for inp in inputs if bind else ():  # as the gateway does when it seals the goal
            await keys.key_for_run("bench", inp.run_id, None, new_run=True)
        began = time.perf_counter()
        handles = [
            await client.start_workflow(AgentWorkflow.run, i, id=i.run_id, task_queue=queue)
            for i in inputs
        ]
        results = await asyncio.gather(*(h.result() for h in handles))
        assert all(r.status == "completed" for r in results)
        return n / (time.perf_counter() - began)

    best = {"sealed_runs_per_s": 0.0, "bare_runs_per_s": 0.0}
    try:
        async with (
            saga_worker.saga_activities(sealed_s) as acts,
            saga_worker.build_worker(sealed, sealed_s, acts),
            saga_worker.build_worker(bare, bare_s, acts),
        ):
            await batch(sealed, sealed_s.temporal_task_queue, True)  # warm-up
            await batch(bare, bare_s.temporal_task_queue, False)
            for _ in range(rounds):
                for name, client, s, bind in (
                    ("sealed", sealed, sealed_s, True),
                    ("bare", bare, bare_s, False),
                ):
                    rate = await batch(client, s.temporal_task_queue, bind)
                    best[f"{name}_runs_per_s"] = max(best[f"{name}_runs_per_s"], rate)
            await batch(sealed, sealed_s.temporal_task_queue, True, 1)  # to count its payloads
        last = await sealed.get_workflow_handle(f"bench-{tag}-probe").fetch_history()
    finally:
        await temporal_client.release(sealed)
    counts = [0, 0]  # payloads in the history, sealed ones
    for event in last.events:
        count_payloads(event, counts)
    return {k: round(v, 2) for k, v in best.items()} | {
        "payloads_per_run": counts[0],
        "sealed_payloads_per_run": counts[1],
    }


def count_payloads(msg: Message, counts: list[int]) -> None:
    for field, value in msg.ListFields():
        if field.message_type is None:
            continue
        for item in value if field.is_repeated else [value]:
            if field.message_type.full_name == "temporal.api.common.v1.Payload":
                counts[0] += 1
                counts[1] += item.metadata.get("encoding") == ENCODING
            elif not field.message_type.GetOptions().map_entry:
                count_payloads(item, counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payloads", type=int, default=5000)
    parser.add_argument("--runs", type=int, default=0, help="runs per batch (0: no stack)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()
    r = asyncio.run(per_payload(args.payloads, args.rounds))
    out: dict[str, Any] = {"bench": "temporal_codec", "payloads": args.payloads, **r}
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (2 shared cores)")
    print(f"{'us per payload (one core)':<28}{'bare':>8}{'+ codec':>9}{'ratio':>7}")
    for side, extra in (("encode", "codec_seal_us"), ("decode", "codec_open_us")):
        bare = r[f"bare_{side}_us"]
        print(f"{side:<28}{bare:>8.1f}{r[extra]:>9.1f}{(bare + r[extra]) / bare:>7.2f}")
    print(
        f"bytes per payload: {r['bytes_per_payload']:.0f} bare, "
        f"{r['sealed_bytes_per_payload']:.0f} sealed"
    )
    if args.runs:
        runs = asyncio.run(per_run(args.runs, args.rounds))
        ratio = runs["sealed_runs_per_s"] / runs["bare_runs_per_s"]
        print(
            f"{args.runs} three-step runs at once, one worker: sealed "
            f"{runs['sealed_runs_per_s']:.1f} runs/s vs bare {runs['bare_runs_per_s']:.1f} "
            f"runs/s ({ratio:.2f}x); a run's history holds {runs['payloads_per_run']} payloads"
            f" ({runs['sealed_payloads_per_run']} sealed)"
        )
        out |= {"runs": args.runs, **runs}
    out["loadavg_1m"] = round(load[0], 2)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
