"""The one consumer's telemetry, with a real codec and in-memory handler and dead-letter
writer: a record's ``traceparent`` reaches the handler, one span per handler batch is
parented on the records' trace, and folds and dead letters are counted by consumer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from opentelemetry import trace
from prometheus_client import REGISTRY

import schemas
from domain.plan_cache import DisabledPlanCache
from omnihub import tracing
from omnihub.settings import Settings
from sagas.telemetry import plan_looked_up
from streams.codec import EventCodec
from streams.consumer import Pipeline, RawRecord, Record
from streams.deadletter import DeadLetter
from streams.schema_registry import SchemaRegistry
from streams.topics import Topic
from streams.topology import Subscription
from tests.factories import goal_received
from tests.unit.spans import recording_spans

TP = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Keep:
    name = "keep"
    transient: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.seen: list[Record] = []
        self.span_traces: list[int] = []

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        self.seen.extend(records)
        self.span_traces.append(trace.get_current_span().get_span_context().trace_id)

    async def resume_at(
        self, partitions: Sequence[tuple[str, int]]
    ) -> Mapping[tuple[str, int], int] | None:
        return None


class Letters:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []

    async def send(self, letter: DeadLetter) -> None:
        self.sent.append(letter)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_pipeline_carries_the_trace_and_counts_folds_and_dead_letters() -> None:
    codec = EventCodec(SchemaRegistry.from_dir(schemas.directory()))
    handler, letters = Keep(), Letters()
    sub = Subscription("telemetry-test", (Topic.RUNS,), None)
    pipeline = Pipeline(Settings(), sub, codec, [handler], deadletters=letters)
    exporter = recording_spans()
    folded = _value("omnihub_events_folded_total", consumer="telemetry-test")
    raws = [
        RawRecord(0, b"r", codec.encode(goal_received("r1")), [("traceparent", TP)]),
        RawRecord(1, b"r", b"not avro", [("traceparent", TP)]),
    ]
    tracing._state["enabled"] = True
    try:
        await pipeline.process("t", 0, raws)
    finally:
        tracing._state["enabled"] = False
    assert [r.trace for r in handler.seen] == [TP, None]  # the undecodable one: no event
    assert _value("omnihub_events_folded_total", consumer="telemetry-test") == folded + 2
    assert len(letters.sent) == 1
    reason = letters.sent[0].reason
    assert _value("omnihub_deadletters_total", consumer="telemetry-test", reason=reason) == 1
    (span,) = [s for s in exporter.get_finished_spans() if s.name.startswith("telemetry-test")]
    assert span.name == "telemetry-test/keep apply"  # one span for the batch, not per record
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert handler.span_traces == [span.context.trace_id]
    assert span.context.trace_id == int("0af7651916cd43dd8448eb211c80319c", 16)


def _plan_counts() -> tuple[float, float, float]:
    return (
        _value("omnihub_plan_cache_hits_total"),
        _value("omnihub_plan_cache_misses_total"),
        _value("omnihub_plan_cache_saved_model_calls_total"),
    )


def test_plan_lookups_count_hits_misses_and_saved_model_calls() -> None:
    before = _plan_counts()
    plan_looked_up(object(), True, True)  # a hit where a model would have planned
    plan_looked_up(object(), True, False)  # a hit where the rules would have
    plan_looked_up(object(), False, True)
    plan_looked_up(DisabledPlanCache(), False, True)  # no cache: nothing to count
    after = _plan_counts()
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (2, 1, 1)
