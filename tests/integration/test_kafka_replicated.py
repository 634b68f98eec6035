"""A 3-broker KRaft cluster loses no acknowledged event when a broker is SIGKILLed.

Writers append runs with OmniHub's own producer (idempotent, ``acks=all``) to topics
with replication 3 and ``min.insync.replicas=2``, while the projector folds them. One
broker (the leader of partition 0) is killed with SIGKILL, kept down long enough to be
fenced and lose its leaderships, then restarted. Afterwards every acknowledged event is
in the log exactly once, the projector has caught up with the whole log (and kept
folding while the broker was down), and every partition has its three replicas in sync
again. The figures are printed: acknowledged, lost, duplicates, the longest pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from infra.kafka_service import KAFKA_SERVICES, service_name
from infra.stack import StackConfig, kill, up
from omnihub.settings import Settings
from streams.admin import ensure_declared_topics
from streams.log_reader import read_log
from streams.producer import KafkaEventAppender, LogUnavailable
from streams.topics import Topic, topic_name
from tests.integration.test_projection_crash import applied_so_far, env_of, start
from tests.integration.test_projection_store import (
    caught_up,
    codec_for,
    fetch,
    isolated_settings,
    story,
    wait_for,
)

BROKERS = [spec.name for spec in KAFKA_SERVICES]
WRITERS = 4
WARM_UP_S = 3.0  # appends (and the projector's group join) before the kill
# Longer than broker.session.timeout.ms (5 s), so the broker gets fenced, and then long
# enough for appends to flow again: every partition has the victim in its ISR, so
# acks=all waits on all of them until the ISR shrinks. Under CI load that took up to
# 9.9 s (a CI run with 8 s saw no append, so nothing to fold, while the broker was down).
DOWN_S = 14.0
WRITE_PAUSE_S = 0.05  # between one writer's appends: bounds the load on 2 cores


@pytest.fixture(scope="module")
def cluster(stack: StackConfig) -> Iterator[StackConfig]:
    """A fresh 3-broker cluster beside the test stack (whose Postgres and Redis the
    projector uses): its brokers listen on 9192..9197 moved by the test offset."""
    offset = stack.kafka_port - StackConfig().kafka_port
    base = StackConfig(kafka_port=9192, kafka_controller_port=9193, kafka_brokers=3)
    cfg = base.with_offset(offset, stack.state_dir.parent / f"test-kafka3-{offset}")
    shutil.rmtree(cfg.state_dir, ignore_errors=True)
    try:
        up(cfg, BROKERS)
        yield cfg
    finally:
        for name in reversed(BROKERS):  # the data is thrown away: no controlled shutdown
            kill(cfg, name)


@dataclass
class Tally:
    """What the writers saw."""

    acked: list[str] = field(default_factory=list)
    refused: int = 0
    longest_s: float = 0.0


@dataclass
class Chaos:
    """When the broker went down and came back, and the projector's progress."""

    victim: int = 0
    killed_at: float = 0.0
    restarted_at: float = 0.0
    in_sync_at: float = 0.0
    folded_while_down: int = 0


async def writer(appender: KafkaEventAppender, n: int, stop: asyncio.Event, tally: Tally) -> None:
    for i in itertools.count():
        if stop.is_set():
            return
        events = story(f"run-w{n}-{i}", f"tenant-{i % 3}", i % 5)
        began = time.monotonic()
        try:
            await appender.append_many(events)
            tally.acked.extend(e.envelope.event_id for e in events)
        except LogUnavailable:
            tally.refused += len(events)  # not acknowledged: the caller would retry
        tally.longest_s = max(tally.longest_s, time.monotonic() - began)
        await asyncio.sleep(WRITE_PAUSE_S)


@contextlib.asynccontextmanager
async def admin_of(settings: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def partitions(settings: Settings) -> list[dict[str, object]]:
    """Every partition of OmniHub's topics: leader, replicas and in-sync replicas."""
    async with admin_of(settings) as admin:
        described = await admin.describe_topics([topic_name(settings, role) for role in Topic])
    return [p for t in described for p in t["partitions"]]


async def all_in_sync(settings: Settings) -> bool:
    found = await partitions(settings)
    return bool(found) and all(len(p["isr"]) == 3 for p in found)  # type: ignore[arg-type]


async def leader_of_first_partition(settings: Settings) -> int:
    async with admin_of(settings) as admin:
        (described,) = await admin.describe_topics([topic_name(settings, Topic.RUNS)])
    first = next(p for p in described["partitions"] if p["partition"] == 0)
    return int(first["leader"])


async def kill_and_restart(cluster: StackConfig, settings: Settings, chaos: Chaos) -> None:
    await asyncio.sleep(WARM_UP_S)
    chaos.victim = await leader_of_first_partition(settings)
    name = service_name(chaos.victim)
    folded_before = await applied_so_far(settings)
    chaos.killed_at = time.monotonic()
    await asyncio.to_thread(kill, cluster, name)
    await asyncio.sleep(DOWN_S)
    chaos.folded_while_down = await applied_so_far(settings) - folded_before
    chaos.restarted_at = time.monotonic()
    await asyncio.to_thread(up, cluster, [name])
    await wait_for(lambda: all_in_sync(settings), 60, "every replica back in sync")
    chaos.in_sync_at = time.monotonic()


async def log_counts(settings: Settings) -> Counter[str]:
    """How often each event id is in the runs topic."""
    seen: Counter[str] = Counter()
    topics = [topic_name(settings, Topic.RUNS)]
    async for record in read_log(settings.kafka_bootstrap, codec_for(settings), topics):
        assert record.event is not None, record.error
        seen[record.event.envelope.event_id] += 1
    return seen


async def write_through_the_outage(cluster: StackConfig, settings: Settings) -> tuple[Tally, Chaos]:
    tally, chaos, stop = Tally(), Chaos(), asyncio.Event()
    appender = KafkaEventAppender(settings, codec_for(settings))
    await appender.start()
    try:
        writers = [asyncio.create_task(writer(appender, n, stop, tally)) for n in range(WRITERS)]
        try:
            await kill_and_restart(cluster, settings, chaos)
            await asyncio.sleep(1.0)  # some appends with the whole ISR back
        finally:
            stop.set()
            await asyncio.gather(*writers)
    finally:
        await appender.stop()
    return tally, chaos


async def test_acknowledged_appends_survive_a_broker_killed_and_restarted(
    cluster: StackConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = isolated_settings(
        kafka_bootstrap=cluster.kafka_bootstrap, topic_replication=3, topic_min_insync=2
    )
    assert await ensure_declared_topics(settings) == []
    assert all(len(p["replicas"]) == 3 for p in await partitions(settings))  # type: ignore[arg-type]
    env = env_of(settings, **cluster.topic_env(), OMNIHUB_KAFKA_BOOTSTRAP=cluster.kafka_bootstrap)
    projector = start(env, tmp_path / "projector.log")
    try:
        began = time.monotonic()
        tally, chaos = await write_through_the_outage(cluster, settings)
        seen = await log_counts(settings)
        await wait_for(lambda: caught_up(settings), 90, "the projector to catch up")
    finally:
        projector.terminate()
        projector.wait(30)
    (projected,) = await fetch(settings, "SELECT count(*) FROM run_events")
    figures = {
        "acknowledged": len(tally.acked),
        "lost": sum(1 for event_id in tally.acked if seen[event_id] == 0),
        "duplicates": sum(seen[event_id] - 1 for event_id in tally.acked if seen[event_id] > 1),
        "not_acknowledged": tally.refused,
        "longest_pause_s": round(tally.longest_s, 2),
        "folded_while_down": chaos.folded_while_down,
        "isr_recovered_after_restart_s": round(chaos.in_sync_at - chaos.restarted_at, 2),
        "killed_broker": chaos.victim,
        "test_s": round(time.monotonic() - began, 1),
    }
    with capsys.disabled():
        print("\n3-broker kill -9:", json.dumps(figures))
    assert figures["acknowledged"] > 0
    assert figures["lost"] == 0
    assert figures["duplicates"] == 0
    assert chaos.folded_while_down > 0, "the projector stalled while a broker was down"
    assert projected[0] == len(seen)  # the projection holds the whole log, each event once
