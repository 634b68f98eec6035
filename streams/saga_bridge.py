"""The saga bridge: run events in Kafka become Temporal workflow starts and signals.

- ``goal_received`` starts ``AgentWorkflow`` with the run id as the workflow id (id reuse
  rejected), so a redelivered goal starts nothing twice;
- ``approval_granted`` / ``approval_denied`` signal ``approval_decided``;
- ``run_cancel_requested`` signals ``cancel_requested``.

A thin aiokafka consumer group: the header says the type, so other events are skipped
without decoding. Offsets are committed after a batch is handled (at least once; every
command is idempotent). An undecodable record goes to the dead-letter topic with the
reason; Temporal being unavailable is retried, never skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.events import ApprovalDenied, ApprovalGranted, Event, GoalReceived, RunCancelRequested
from omnihub.readiness import mark_ready
from omnihub.settings import Settings
from sagas.messages import ApprovalDecision, CancelRequest, RunInput, RunPolicy
from sagas.workflow import AgentWorkflow
from streams.admin import ensure_declared_topics
from streams.codec import DecodeError, EventCodec
from streams.processors.deadletter import DeadLetter, DeadLetterWriter, KafkaDeadLetterWriter
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic, topic_name

log = logging.getLogger(__name__)

BRIDGED_TYPES = frozenset(
    {"goal_received", "approval_granted", "approval_denied", "run_cancel_requested"}
)
MAX_ATTEMPTS_UNEXPECTED = 5


@dataclass(frozen=True)
class StartRun:
    run: RunInput


@dataclass(frozen=True)
class DecideApproval:
    run_id: str
    decision: ApprovalDecision


@dataclass(frozen=True)
class CancelRun:
    run_id: str
    request: CancelRequest


Command = StartRun | DecideApproval | CancelRun


def policy_from(settings: Settings) -> RunPolicy:
    """The run policy new runs start with."""
    return RunPolicy(
        settings.approval_threshold, settings.approval_timeout_s, settings.saga_history_limit
    )


def command_for(event: Event, policy: RunPolicy) -> Command | None:
    """What the workflow side must do about ``event`` (pure)."""
    env = event.envelope
    if isinstance(event, GoalReceived):
        run = RunInput(
            env.run_id, env.tenant_id, event.goal, env.event_id, dict(event.context), policy
        )
        return StartRun(run)
    if isinstance(event, ApprovalGranted | ApprovalDenied):
        granted = isinstance(event, ApprovalGranted)
        timed_out = isinstance(event, ApprovalDenied) and event.timed_out
        decision = ApprovalDecision(
            event.approval_id, event.step_id, granted, event.approver, event.reason, timed_out
        )
        return DecideApproval(env.run_id, decision)
    if isinstance(event, RunCancelRequested):
        return CancelRun(env.run_id, CancelRequest(event.reason, event.requested_by))
    return None


class TemporalRuns:
    """Applies commands to ``AgentWorkflow`` executions."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self._client = client
        self._task_queue = task_queue

    async def apply(self, command: Command) -> str:
        """Apply ``command``; returns what happened (started, duplicate, signalled, gone)."""
        if isinstance(command, StartRun):
            try:
                await self._client.start_workflow(
                    AgentWorkflow.run,
                    command.run,
                    id=command.run.run_id,
                    task_queue=self._task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                )
            except WorkflowAlreadyStartedError:
                return "duplicate"
            return "started"
        handle: WorkflowHandle[AgentWorkflow, object] = self._client.get_workflow_handle(
            command.run_id
        )
        try:
            if isinstance(command, DecideApproval):
                await handle.signal(AgentWorkflow.approval_decided, command.decision)
            else:
                await handle.signal(AgentWorkflow.cancel_requested, command.request)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return "gone"  # the run finished (or never started): nothing waits for it
            raise
        return "signalled"


class SagaBridge:
    """Turns one partition's records into commands, in order."""

    def __init__(
        self,
        codec: EventCodec,
        runs: TemporalRuns,
        deadletters: DeadLetterWriter,
        policy: RunPolicy,
    ) -> None:
        self._codec = codec
        self._runs = runs
        self._deadletters = deadletters
        self._policy = policy
        self.applied: dict[str, int] = {}

    async def handle(
        self, records: Sequence[ConsumerRecord[bytes, bytes]], stop: asyncio.Event
    ) -> None:
        """Handle records of one partition in offset order."""
        for record in records:
            headers = dict(record.headers or ())
            event_type = (headers.get("event_type") or b"").decode(errors="replace")
            if event_type not in BRIDGED_TYPES:
                continue
            try:
                event = self._codec.decode(record.value or b"")
            except DecodeError as exc:
                await self._dead_letter(record, exc.reason, exc.detail)
                continue
            command = command_for(event, self._policy)
            if command is not None:
                await self._apply(record, command, stop)

    async def _apply(
        self, record: ConsumerRecord[bytes, bytes], command: Command, stop: asyncio.Event
    ) -> None:
        delay, unexpected = 0.2, 0
        while not stop.is_set():
            try:
                outcome = await self._runs.apply(command)
                self.applied[outcome] = self.applied.get(outcome, 0) + 1
                return
            except RPCError as exc:  # Temporal down or overloaded: wait, never skip
                log.warning("temporal unavailable (%s); retrying in %.1fs", exc, delay)
            except Exception as exc:
                unexpected += 1
                if unexpected >= MAX_ATTEMPTS_UNEXPECTED:
                    await self._dead_letter(record, "bridge_failed", f"{type(exc).__name__}: {exc}")
                    return
                log.exception("bridging %s failed; retrying", type(command).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], reason: str, detail: str
    ) -> None:
        headers = [(k, v) for k, v in (record.headers or ())]
        letter = DeadLetter(
            record.topic,
            record.partition,
            record.offset,
            reason,
            detail,
            record.key,
            record.value,
            headers,
        )
        await self._deadletters.send(letter)
        self.applied["dead_lettered"] = self.applied.get("dead_lettered", 0) + 1


def bridge_group(settings: Settings) -> str:
    """The bridge's consumer group."""
    return f"{settings.topic_prefix}-saga-bridge"


async def run_bridge(
    settings: Settings,
    stop: asyncio.Event,
    *,
    group_id: str | None = None,
    start_at_latest: bool = False,
    ready: asyncio.Event | None = None,
    client: Client | None = None,
) -> SagaBridge:
    """Bridge until ``stop`` is set. A new group starts at the oldest record unless told."""
    await ensure_declared_topics(settings)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    client = client or await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace
    )
    group = group_id or bridge_group(settings)
    dlq = KafkaDeadLetterWriter(settings, group)
    bridge = SagaBridge(
        codec, TemporalRuns(client, settings.temporal_task_queue), dlq, policy_from(settings)
    )
    consumer = AIOKafkaConsumer(
        topic_name(settings, Topic.RUNS),
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="latest" if start_at_latest else "earliest",
        session_timeout_ms=10_000,
        heartbeat_interval_ms=1_000,
        max_poll_records=500,
    )
    await dlq.start()
    await consumer.start()
    mark_ready()
    try:
        await _consume(consumer, bridge, stop, ready)
    finally:
        await consumer.stop()
        await dlq.stop()
    return bridge


async def _consume(
    consumer: AIOKafkaConsumer, bridge: SagaBridge, stop: asyncio.Event, ready: asyncio.Event | None
) -> None:
    while not stop.is_set():
        batch = await consumer.getmany(timeout_ms=500)
        if ready is not None and not ready.is_set() and consumer.assignment():
            await _positions_fixed(consumer)
            ready.set()
        if batch:
            # Partitions are independent (a run lives in one); within one, order is kept.
            await asyncio.gather(*(bridge.handle(records, stop) for records in batch.values()))
            if not stop.is_set():
                try:
                    await consumer.commit()
                except KafkaError as exc:  # a rebalance: the records come again, harmlessly
                    log.warning("offset commit failed (%s); records will be redelivered", exc)


async def _positions_fixed(consumer: AIOKafkaConsumer) -> None:
    """Resolve every assigned partition's position now (so "latest" means now)."""
    for tp in consumer.assignment():
        await consumer.position(TopicPartition(tp.topic, tp.partition))
