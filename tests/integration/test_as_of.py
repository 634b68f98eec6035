"""Point-in-time reads for auditors: the real log up to a moment, folded afresh."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from datetime import UTC, datetime, timedelta

from infra.launch import omnihub_argv
from projections.as_of import KnownAt, known_at
from projections.fold import Loaded, fold_batch
from streams.topics import Topic, topic_name
from tests.integration.test_projection_store import append, codec_for, isolated_settings, story


async def test_the_log_at_a_moment_gives_what_the_system_knew_then() -> None:
    settings = isolated_settings()
    codec, runs = codec_for(settings), topic_name(settings, Topic.RUNS)
    now = datetime.now(UTC)
    mine, other = story("run-audited", "acme", 2, at=now), story("run-other", "globex", 0, at=now)
    before_all = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await append(settings, [*mine[:4], *other])  # received .. step started; the other ends
    await asyncio.sleep(0.05)
    midway = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await append(settings, mine[4:])  # approval requested and granted, step done, completed

    async def read(at: datetime, **which: str) -> KnownAt:
        return await known_at(settings.kafka_bootstrap, codec, runs, at, **which)

    then = await read(midway, run_id="run-audited")
    assert list(then.runs) == ["run-audited"]
    assert then.runs["run-audited"] == fold_batch(Loaded(), mine[:4]).runs["run-audited"]
    assert then.runs["run-audited"].status == "running"
    assert [t.event_type for t in then.timeline] == [e.EVENT_TYPE for e in mine[:4]]
    assert then.approvals == {}

    later = await read(datetime.now(UTC) + timedelta(seconds=1), run_id="run-audited")
    assert later.runs["run-audited"] == fold_batch(Loaded(), mine).runs["run-audited"]
    assert later.runs["run-audited"].status == "completed"
    assert [a.status for a in later.approvals.values()] == ["granted"]

    tenant = await read(midway, tenant_id="globex")
    assert {r.run_id: r.status for r in tenant.runs.values()} == {"run-other": "completed"}
    assert (await read(before_all)).runs == {}

    env = {**os.environ, "OMNIHUB_TOPIC_PREFIX": settings.topic_prefix}
    cli = [*omnihub_argv("projections", "as-of"), "--at", midway.isoformat()]
    done = await asyncio.to_thread(
        subprocess.run,
        [*cli, "--run", "run-audited", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [r["status"] for r in doc["runs"]] == ["running"]
    assert len(doc["timeline"]) == 4
    missing = await asyncio.to_thread(
        subprocess.run,
        [*cli, "--run", "run-nope"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and "was not in the log" in missing.stderr
