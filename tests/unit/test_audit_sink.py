"""The audit sink: denials appended before ``record`` returns; successes gathered for a few
milliseconds and appended together; ``drain`` flushes a batch still gathering; a log that
is down is logged, never raised into the request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from api.security.audit import AuditSink, audit_fact
from domain.events import AuditFactObserved, Event
from streams.producer import AppendResult, LogUnavailable


class RecordingLog:
    def __init__(self) -> None:
        self.calls: list[list[Event]] = []
        self.down = False

    async def append(self, event: Event) -> AppendResult:
        return (await self.append_many([event]))[0]

    async def append_many(self, events: Sequence[Event]) -> list[AppendResult]:
        if self.down:
            raise LogUnavailable("broker unreachable")
        self.calls.append(list(events))
        return [AppendResult(e.envelope.event_id, "t", 0, 0) for e in events]


def fact(outcome: str, tenant: str = "acme") -> AuditFactObserved:
    return audit_fact(tenant, "authn", "authenticate", outcome, subject="api-key:abc")


async def test_a_denial_is_in_the_log_when_record_returns() -> None:
    log = RecordingLog()
    denied = fact("failure")
    await AuditSink(lambda: log).record(denied)
    assert log.calls == [[denied]]


async def test_successes_of_a_burst_are_appended_together() -> None:
    log = RecordingLog()
    sink = AuditSink(lambda: log, linger_s=0.005)
    burst = [fact("success", tenant=f"t{i}") for i in range(20)]
    for f in burst:
        sink.record_later(f)
    assert log.calls == []  # nothing waits on the log while the requests answer
    await sink.drain()
    assert log.calls == [burst]
    later = fact("success")
    sink.record_later(later)  # a new batch after the last one went out
    await sink.drain()
    assert log.calls == [burst, [later]]


async def test_drain_flushes_the_batch_still_gathering() -> None:
    log = RecordingLog()
    sink = AuditSink(lambda: log, linger_s=60)  # would not flush on its own in this test
    sink.record_later(fact("success"))
    await asyncio.wait_for(sink.drain(), timeout=5)
    assert len(log.calls) == 1


async def test_a_log_that_is_down_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    log = RecordingLog()
    log.down = True
    sink = AuditSink(lambda: log, linger_s=0)
    with caplog.at_level(logging.ERROR):
        await sink.record(fact("failure"))
        sink.record_later(fact("success"))
        sink.record_later(fact("success"))
        await sink.drain()
    assert sum("audit fact not recorded" in r.message for r in caplog.records) == 3
