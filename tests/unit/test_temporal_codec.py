"""The payload codec that seals Temporal's payloads with the run's data key (issue 13).

In memory (the keys in a dict); the real Temporal server and Postgres are in
tests/integration/test_temporal_sealing.py.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer

from domain import ids
from domain.events import SubjectErased
from sagas.bridge import TerminateErased, command_for, policy_from
from sagas.messages import ApprovalDecision, RunInput, RunPolicy
from sagas.payload_codec import (
    ENCODING,
    KEY_ID,
    PayloadErased,
    SealingCodec,
    sealing_converter,
)
from sagas.workflow import AgentWorkflow

SECRET = "Quistorp-7781"
HISTORIES = Path(__file__).parent.parent / "histories"


class MemoryKeys:
    """:class:`sagas.payload_codec.RunKeys` in a dict, counting its calls."""

    def __init__(self) -> None:
        self.bound: dict[str, str] = {}
        self.keys_by_id: dict[str, bytes | None] = {}
        self.calls = 0

    def bind(self, run_id: str, key_id: str = "k1") -> None:
        self.keys_by_id.setdefault(key_id, os.urandom(32))
        self.bound[run_id] = key_id

    def erase(self, key_id: str) -> None:
        self.keys_by_id[key_id] = None

    async def run_key(self, run_id: str) -> tuple[str, bytes | None] | None:
        self.calls += 1
        key_id = self.bound.get(run_id)
        return None if key_id is None else (key_id, self.keys_by_id[key_id])

    async def keys(self, key_ids: Sequence[str]) -> Mapping[str, bytes | None]:
        self.calls += 1
        return {k: self.keys_by_id.get(k) for k in key_ids}

    async def close(self) -> None:
        pass


def run_input(run_id: str) -> RunInput:
    return RunInput(
        run_id=run_id,
        tenant_id="t1",
        goal=f"book a table for {SECRET}",
        goal_event_id="g1",
        context={"note": SECRET},
        policy=RunPolicy(),
    )


def in_workflow(dc: DataConverter, run_id: str) -> DataConverter:
    return dc.with_context(WorkflowSerializationContext(namespace="default", workflow_id=run_id))


def raw(payloads: Sequence[Payload]) -> bytes:
    return b"".join(p.SerializeToString() for p in payloads)


async def test_a_runs_payloads_are_sealed_and_open_again() -> None:
    keys = MemoryKeys()
    keys.bind("run-1")
    dc = in_workflow(sealing_converter(keys), "run-1")
    payloads = await dc.encode([run_input("run-1")])
    assert SECRET.encode() not in raw(payloads)
    assert payloads[0].metadata["encoding"] == ENCODING
    assert payloads[0].metadata[KEY_ID] == b"k1"
    (back,) = await dc.decode(payloads, [RunInput])
    assert back == run_input("run-1")
    # Opening needs no context: the payload names its key (a client without one reads it).
    (again,) = await sealing_converter(keys).decode(payloads, [RunInput])
    assert again == run_input("run-1")


async def test_an_activitys_payloads_use_the_workflows_run_key() -> None:
    keys = MemoryKeys()
    keys.bind("run-2", "k2")
    context = ActivitySerializationContext(
        namespace="default",
        activity_id="1",
        activity_type="execute_step",
        activity_task_queue="q",
        workflow_id="run-2",
        workflow_type="AgentWorkflow",
        is_local=False,
    )
    dc = sealing_converter(keys).with_context(context)
    (payload,) = await dc.encode([{"result": SECRET}])
    assert payload.metadata[KEY_ID] == b"k2" and SECRET.encode() not in payload.data


async def test_payloads_of_no_run_or_an_unbound_run_stay_in_the_clear() -> None:
    keys = MemoryKeys()
    for dc in (sealing_converter(keys), in_workflow(sealing_converter(keys), "unbound")):
        payloads = await dc.encode([run_input("x")])
        assert SECRET.encode() in raw(payloads)
        assert payloads[0].metadata["encoding"] == b"json/plain"
        assert await dc.decode(payloads, [RunInput]) == [run_input("x")]


async def test_clear_payloads_from_before_the_codec_pass_through() -> None:
    keys = MemoryKeys()
    keys.bind("run-3")
    old = await DataConverter.default.encode([run_input("run-3")])
    (back,) = await in_workflow(sealing_converter(keys), "run-3").decode(old, [RunInput])
    assert back == run_input("run-3")
    assert keys.calls == 0  # nothing sealed: no key looked up


async def test_keys_are_cached_no_lookup_per_payload() -> None:
    keys = MemoryKeys()
    keys.bind("run-4")
    process = sealing_converter(keys)  # one per client, shared by its workers
    for _ in range(50):
        # Each call gets a codec for its context (a workflow task, a signal), sharing
        # the process's cache.
        dc = in_workflow(process, "run-4")
        payloads = await dc.encode([run_input("run-4")])
        await dc.decode(payloads, [RunInput])
        await dc.encode(
            [
                ApprovalDecision(
                    approval_id="a1", step_id="s1", granted=True, approver="alice", reason=SECRET
                )
            ]
        )
    assert keys.calls == 1  # the run's key, which then opens its payloads too


async def test_after_erasure_nothing_opens_and_nothing_new_is_clear() -> None:
    keys = MemoryKeys()
    keys.bind("run-5")
    dc = in_workflow(sealing_converter(keys), "run-5")
    sealed = await dc.encode([run_input("run-5")])
    keys.erase("k1")
    fresh = in_workflow(sealing_converter(keys), "run-5")  # another process, or 30 s later
    with pytest.raises(PayloadErased):
        await fresh.decode(sealed, [RunInput])
    late = await fresh.encode(
        [
            ApprovalDecision(
                approval_id="a1", step_id="s1", granted=True, approver="alice", reason=SECRET
            )
        ]
    )
    assert SECRET.encode() not in raw(late) and late[0].metadata[KEY_ID] == b"k1"
    with pytest.raises(PayloadErased):
        await fresh.decode(late)
    # A process that still caches the key is told to forget it.
    codec = dc.payload_codec
    assert isinstance(codec, SealingCodec)
    codec.cache.forget("k1")
    with pytest.raises(PayloadErased):
        await dc.decode(sealed, [RunInput])


async def test_failure_messages_and_stack_traces_are_sealed() -> None:
    keys = MemoryKeys()
    keys.bind("run-6")
    dc = in_workflow(sealing_converter(keys), "run-6")
    failure = Failure()
    try:
        raise ApplicationError(f"no table for {SECRET}", {"who": SECRET})
    except ApplicationError as exc:
        await dc.encode_failure(exc, failure)
    assert SECRET.encode() not in failure.SerializeToString()
    back = await dc.decode_failure(failure)
    assert isinstance(back, ApplicationError) and back.message == f"no table for {SECRET}"


def test_subject_erased_terminates_the_run_without_personal_data() -> None:
    env = ids.envelope(
        SubjectErased, run_id="run-7", tenant_id="t1", actor="user:dpo", correlation_id="e1"
    )
    command = command_for(SubjectErased(env, "e1", "k1", "subject", "user:dpo"), RunPolicy())
    assert command == TerminateErased("run-7", "e1")
    assert "e1" in command.reason and "erased" in command.reason
    assert policy_from  # the bridge's other commands are covered by test_saga_runs


# Replays: recorded histories (clear) and the same histories sealed.


async def visit_payloads(
    msg: Message, fn: Callable[[list[Payload]], Awaitable[list[Payload]]]
) -> None:
    """Apply ``fn`` to every payload of ``msg`` that a codec sees (not headers, not
    search attributes)."""
    for field, value in msg.ListFields():
        if field.message_type is None or field.name in ("header", "search_attributes"):
            continue
        if field.message_type.GetOptions().map_entry:
            continue  # memo and friends: AgentWorkflow sets none
        repeated = field.is_repeated
        if field.message_type.full_name == "temporal.api.common.v1.Payload":
            items = list(value) if repeated else [value]
            new = await fn(items)
            if repeated:
                del value[:]
                value.extend(new)
            else:
                value.CopyFrom(new[0])
        else:
            for item in value if repeated else [value]:
                await visit_payloads(item, fn)


async def sealed_history(name: str, keys: MemoryKeys) -> WorkflowHistory:
    history = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    keys.bind(history.workflow_id)
    dc = in_workflow(sealing_converter(keys), history.workflow_id)
    codec = dc.payload_codec
    assert codec is not None
    for event in history.events:
        await visit_payloads(event, codec.encode)
    return history


def replayer(dc: DataConverter) -> Replayer:
    return Replayer(workflows=[AgentWorkflow], data_converter=dc)


@pytest.mark.parametrize("name", ["happy_dag", "approval_granted", "failure_compensation"])
async def test_histories_replay_with_the_codec_clear_or_sealed(name: str) -> None:
    keys = MemoryKeys()
    clear = WorkflowHistory.from_json(name, (HISTORIES / f"{name}.json").read_text())
    result = await replayer(sealing_converter(keys)).replay_workflow(
        clear, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, repr(result.replay_failure)
    sealed = await sealed_history(name, keys)
    started = sealed.events[0].workflow_execution_started_event_attributes
    assert started.input.payloads[0].metadata["encoding"] == ENCODING
    result = await replayer(sealing_converter(keys)).replay_workflow(
        sealed, raise_on_replay_failure=False
    )
    assert result.replay_failure is None, repr(result.replay_failure)


async def test_a_sealed_history_does_not_replay_once_its_key_is_erased() -> None:
    keys = MemoryKeys()
    sealed = await sealed_history("happy_dag", keys)
    keys.erase("k1")
    outcome: Any
    try:
        outcome = (
            await replayer(sealing_converter(keys)).replay_workflow(
                sealed, raise_on_replay_failure=False
            )
        ).replay_failure
    except Exception as exc:  # how the SDK reports an undecodable activation
        outcome = exc
    assert "PayloadErased" in repr(outcome)
