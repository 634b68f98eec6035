"""``omnihub demo``: post a goal to the running platform and watch its events flow, then
sign in with a wallet and watch the tenant's tier follow a membership minted on chain."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import httpx

from apps.commands.demo_wallet import wallet_tier
from omnihub.settings import Settings, get_settings
from sagas.planner import UNDERSTOOD

FINAL = {"run_completed", "run_failed", "run_cancelled"}
# With no model configured the rule-based planner (sagas/planner.py) makes this a DAG: an
# echo, then an upper-case transform and a Postgres record side by side, then a wait.
DEMO_GOAL = (
    "Say this week's incident notes are in then shout the headline and also save the summary "
    "for the ops team then wait 1 seconds"
)
# A second goal the dashboard shows waiting: "payment" makes its step risky, so it waits
# for a person to approve or deny it there (sagas/planner.py).
APPROVAL_GOAL = "say hi then approve the payment"


def register(sub: Any) -> None:
    demo = sub.add_parser("demo", help="post a demo goal and show its events as they flow")
    demo.add_argument(
        "--goal",
        default=DEMO_GOAL,
        help="without a model, the rules planner plans only what it understands: "
        + UNDERSTOOD.replace("%", "%%"),
    )
    demo.add_argument("--tenant", default="demo")
    demo.add_argument("--seconds", type=float, default=60, help="how long to follow the run")
    demo.add_argument(
        "--key",
        help="an API key with goals:write and runs:read (default: "
        "mint one for the tenant, as the operator)",
    )
    demo.set_defaults(handler=_demo)


def _demo(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_run(args, get_settings()))
    except KeyboardInterrupt:
        return 130


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from apps.commands.keys import operator_key

    base = f"http://{settings.api_host}:{settings.api_port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        if not await _wait_healthy(client):
            print(
                f"the API at {base} is not healthy; is `omnihub stack up` running?", file=sys.stderr
            )
            return 1
        key = args.key or await operator_key(
            settings, args.tenant, ["goals:write", "runs:read"], "demo"
        )
        client.headers["Authorization"] = f"Bearer {key}"
        body = {"tenant_id": args.tenant, "goal": args.goal, "context": {"source": "demo"}}
        r = await client.post("/api/v1/goals", json=body)
        if r.status_code != 202:
            print(f"POST /api/v1/goals -> {r.status_code}: {r.text}", file=sys.stderr)
            return 1
        accepted = r.json()
        print(f"POST /api/v1/goals -> 202 {json.dumps(accepted)}")
        print(f"events of run {accepted['run_id']} (Ctrl-C to stop):")
        final = await _follow(settings, accepted, args.seconds)
        view = await _projected(client, accepted["status_url"], final)
        if view is not None:
            print(f"GET {accepted['status_url']} (the run's read model, from the projector) ->")
            print(_summary(view))
        live = await client.get("/api/v1/live", params={"limit": 1})
        if live.status_code == 200:
            counters = " ".join(f"{k}={v}" for k, v in live.json()["counters"].items() if v)
            print(f"GET /api/v1/live (the tenant's live counters, from Redis) -> {counters}")
        dashboard_key = await _waiting_approval(client, settings, args.tenant)
        print("\nMemberships on chain: a wallet signs in and is minted a pro membership")
        client.headers["Authorization"] = f"Bearer {dashboard_key}"  # admin: links wallets
        await wallet_tier(client, settings)
    if final is None:
        print(
            f"(no final event within {args.seconds:g}s; `omnihub tail --run "
            f"{accepted['run_id']}` keeps following)"
        )
    print(f"\nOmniDash: {base}/dashboard/ (sign in with the key {dashboard_key})")
    return 0


async def _waiting_approval(client: httpx.AsyncClient, settings: Settings, tenant: str) -> str:
    """Post a goal that waits for approval; a key that may decide it, for the dashboard."""
    from apps.commands.keys import operator_key

    r = await client.post(
        "/api/v1/goals", json={"goal": APPROVAL_GOAL, "context": {"source": "demo"}}
    )
    if r.status_code == 202:
        print(f"POST /api/v1/goals -> 202: run {r.json()['run_id']} will wait for approval")
    return await operator_key(settings, tenant, ["admin", "approvals:decide"], "demo-dashboard")


def _summary(view: dict[str, Any]) -> str:
    """The run's read model as a dashboard would show it: fields, then its timeline."""
    fields = {k: v for k, v in view.items() if k not in ("timeline", "freshness") and v is not None}
    lines = [f"  {k:<18} {v}" for k, v in fields.items()]
    lines.append("  timeline:")
    lines += [
        f"    {e.get('seq'):>3} {e.get('event_type', ''):<24} {e.get('summary', '')}"
        for e in view.get("timeline", [])
    ]
    if "freshness" in view:
        lines.append(f"  freshness          {json.dumps(view['freshness'], default=str)[:200]}")
    return "\n".join(lines)


async def _projected(
    client: httpx.AsyncClient, url: str, final: str | None, timeout_s: float = 15
) -> dict[str, Any] | None:
    """The run's read model once the projector has caught up with ``final``."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        r = await client.get(url)
        if r.status_code == 200:
            body = r.json()
            if final is None or body.get("status") == final.removeprefix("run_"):
                return body
        await asyncio.sleep(0.3)
    return body


async def _wait_healthy(client: httpx.AsyncClient, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if (await client.get("/health")).status_code == 200:
                return True
        except httpx.TransportError:
            pass  # not listening yet
        await asyncio.sleep(0.5)
    return False


async def _follow(settings: Settings, accepted: dict[str, Any], seconds: float) -> str | None:
    """Print the run's events until a final one or ``seconds``; the final type, if any.

    A run's events share its partition, so only that one is read, from the goal on.
    """
    from aiokafka import TopicPartition

    from apps.commands.log import format_event
    from streams.codec import EventCodec
    from streams.log_reader import read_log
    from streams.schema_registry import SchemaRegistry
    from streams.topics import Topic, topic_name

    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    topic = topic_name(settings, Topic.RUNS)
    run_id = accepted["run_id"]
    start = {TopicPartition(topic, accepted["partition"]): accepted["offset"]}
    try:
        async with asyncio.timeout(seconds):
            async for rec in read_log(
                settings.kafka_bootstrap, codec, [topic], follow=True, start_at=start
            ):
                if rec.event is None or rec.event.envelope.run_id != run_id:
                    continue
                print("  " + format_event(rec.event, rec.topic, rec.partition, rec.offset, False))
                if rec.event.EVENT_TYPE in FINAL:
                    return rec.event.EVENT_TYPE
    except TimeoutError:
        pass
    return None
