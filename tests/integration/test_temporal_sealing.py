"""Erasure reaches Temporal's workflow history (issue 13), against the real dev server.

A goal naming a data subject goes into the log sealed; the saga bridge starts its
workflow and a worker in this process runs it, both with OmniHub's client, whose codec
seals every payload with the run's data key. The raw bytes of the dev server's SQLite
files and a history fetched without the codec hold none of the text (goal, step
results, an approval's note and a cancel reason as signals); with the codec the
history opens; after ``erase_subject`` it does not, and a run still open is terminated
by the bridge.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

from apps import temporal_client
from apps import worker as saga_worker
from apps.saga_bridge import run_bridge
from domain import ids
from domain.events import ApprovalGranted, ApprovalRequested, GoalReceived
from infra.stack import StackConfig
from omnihub.settings import Settings
from projections.keyring import PgKeyStore, privacy_for
from projections.shredding import erase_subject
from sagas.messages import RunInput, RunResult
from sagas.payload_codec import ENCODING, PayloadErased, sealing_converter
from streams.admin import ensure_declared_topics
from streams.producer import KafkaEventAppender
from tests.integration.test_privacy_erasure import temporal_db_holds
from tests.integration.test_projection_store import isolated_settings
from tests.integration.test_saga_runs import cancel_request, decision, of_type
from tests.saga_support import RunTap, codec_for, tapping, unique


@dataclass
class Sealed:
    settings: Settings
    stack: StackConfig
    client: Client  # OmniHub's: seals and opens
    bare: Client  # no codec: what anyone with access to Temporal reads
    tap: RunTap
    appender: KafkaEventAppender  # seals the goal, like the gateway

    async def submit(self, goal: str, subject: str | None, tenant: str = "tenant-tc") -> str:
        run_id = str(uuid.uuid4())
        env = ids.envelope(
            GoalReceived, run_id=run_id, tenant_id=tenant, actor="test", correlation_id=run_id
        )
        context = {"data_subject": subject} if subject else {}
        await self.appender.append(GoalReceived(env, goal, context, None))
        return run_id

    async def history(self, run_id: str) -> WorkflowHistory:
        return await self.bare.get_workflow_handle(run_id).fetch_history()


@pytest.fixture(scope="module")
async def sealed(stack: StackConfig) -> AsyncIterator[Sealed]:
    settings = isolated_settings(temporal_task_queue=unique("tcodec"))
    await ensure_declared_topics(settings)
    await saga_worker.migrate_tool_tables(settings)
    client = await saga_worker.connect(settings)
    bare = await Client.connect(settings.temporal_address, namespace=settings.temporal_namespace)
    codec = codec_for(settings)
    appender = KafkaEventAppender(settings, codec, privacy=privacy_for(settings, codec.registry))
    stop, ready = asyncio.Event(), asyncio.Event()
    async with (
        saga_worker.saga_activities(settings) as acts,
        saga_worker.build_worker(client, settings, acts),
    ):
        bridge = asyncio.create_task(
            run_bridge(settings, stop, group_id=unique("tc-bridge"), ready=ready, client=client)
        )
        await asyncio.wait_for(ready.wait(), 60)
        async with tapping(settings) as tap:
            yield Sealed(settings, stack, client, bare, tap, appender)
        stop.set()
        await bridge
    await appender.stop()
    await temporal_client.release(client)


async def opened_input(settings: Settings, history: WorkflowHistory) -> RunInput:
    """The workflow's input, opened by a fresh process's converter (no cached key)."""
    store = PgKeyStore(settings)
    try:
        started = history.events[0].workflow_execution_started_event_attributes
        (value,) = await sealing_converter(store).decode(started.input.payloads, [RunInput])
        assert isinstance(value, RunInput)
        return value
    finally:
        await store.close()


async def test_a_sealed_run_leaves_no_plaintext_in_temporal_and_erasure_shreds_it(
    sealed: Sealed,
) -> None:
    secret = f"Pennywhistle{uuid.uuid4().hex[:8]}"
    subject = f"{secret}@example.com"
    run_id = await sealed.submit(f"say {secret} then upper {secret}", subject)
    await sealed.tap.wait_for(run_id, "run_completed", 90)
    history = await sealed.history(run_id)
    started = history.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == ENCODING
    raw = b"".join(e.SerializeToString() for e in history.events)
    assert secret.encode() not in raw and subject.encode() not in raw
    assert not temporal_db_holds(sealed.stack, secret)
    assert not temporal_db_holds(sealed.stack, subject)
    handle = sealed.client.get_workflow_handle(run_id, result_type=RunResult)
    result = await handle.result()  # OmniHub's client opens it
    assert result.status == "completed" and secret.upper() in str(result.results)
    opened = await opened_input(sealed.settings, history)
    assert opened.goal == f"say {secret} then upper {secret}"

    store = PgKeyStore(sealed.settings)
    try:
        erased = await erase_subject(
            store, sealed.appender, tenant_id=None, subject=subject, requested_by="user:dpo"
        )
    finally:
        await store.close()
    assert [e.run_ids for e in erased] == [[run_id]]
    with pytest.raises(PayloadErased):
        await opened_input(sealed.settings, await sealed.history(run_id))


async def test_an_erased_run_still_waiting_is_terminated_not_left_looping(sealed: Sealed) -> None:
    secret = f"Gallowglass{uuid.uuid4().hex[:8]}"
    subject = f"{secret}@example.com"
    run_id = await sealed.submit(f"say {secret} then approve the payment", subject)
    await sealed.tap.wait_for(run_id, "approval_requested", 90)
    store = PgKeyStore(sealed.settings)
    try:
        await erase_subject(
            store, sealed.appender, tenant_id=None, subject=subject, requested_by="user:dpo"
        )
    finally:
        await store.close()
    handle = sealed.bare.get_workflow_handle(run_id)
    for _ in range(300):
        if (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED:
            break
        await asyncio.sleep(0.1)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    history = await handle.fetch_history()
    last = history.events[-1].workflow_execution_terminated_event_attributes
    assert last.reason.startswith("subject erased") and secret not in last.reason
    assert not temporal_db_holds(sealed.stack, secret)


async def test_a_run_bound_to_no_key_stays_clear_which_the_scan_sees(sealed: Sealed) -> None:
    """The control: a goal appended unsealed (no key: tests, benchmarks) is in the clear
    in Temporal's files, as in the log, so the scans above would have found the text."""
    plain = f"Umbrage{uuid.uuid4().hex[:8]}"
    appender = KafkaEventAppender(sealed.settings, codec_for(sealed.settings))
    try:
        run_id = str(uuid.uuid4())
        env = ids.envelope(
            GoalReceived, run_id=run_id, tenant_id="t-plain", actor="test", correlation_id=run_id
        )
        await appender.append(GoalReceived(env, f"say {plain}", {}, None))
    finally:
        await appender.stop()
    await sealed.tap.wait_for(run_id, "run_completed", 90)
    history = await sealed.history(run_id)
    assert plain.encode() in b"".join(e.SerializeToString() for e in history.events)
    for _ in range(100):  # the server's write may still be on its way to the file
        if temporal_db_holds(sealed.stack, plain):
            break
        await asyncio.sleep(0.1)
    assert temporal_db_holds(sealed.stack, plain)


async def test_signals_an_approval_note_and_a_cancel_reason_are_sealed(sealed: Sealed) -> None:
    secret = f"Marchbanks{uuid.uuid4().hex[:8]}"
    granted = await sealed.submit("say hi then approve the payment", f"{secret}@example.com")
    cancelled = await sealed.submit("say hi then approve the payment", f"{secret}@example.com")
    for run_id in (granted, cancelled):
        await sealed.tap.wait_for(run_id, "approval_requested", 90)
    (request,) = of_type(sealed.tap.events[granted], ApprovalRequested)
    assert isinstance(request, ApprovalRequested)
    await sealed.appender.append(
        decision(ApprovalGranted, request, "alice", f"{secret} confirmed by phone")
    )
    tenant = request.envelope.tenant_id
    await sealed.appender.append(cancel_request(cancelled, tenant, f"{secret} moved", "bob"))
    await sealed.tap.wait_for(granted, "run_completed", 90)
    await sealed.tap.wait_for(cancelled, "run_cancelled", 90)
    for run_id in (granted, cancelled):
        history = await sealed.history(run_id)
        signals = [
            e.workflow_execution_signaled_event_attributes
            for e in history.events
            if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert signals and all(
            s.input.payloads[0].metadata["encoding"] == ENCODING for s in signals
        )
        assert secret.encode() not in b"".join(e.SerializeToString() for e in history.events)
    assert not temporal_db_holds(sealed.stack, secret)
