"""The gateway's retention loop: runs the job each turn, survives a failed run, stops."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from projections import audit_expiry
from projections.audit_expiry import SCHEDULER, keep_expiring


async def test_the_job_runs_every_turn_as_the_scheduler_and_a_failure_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stop = asyncio.Event()
    runs: list[tuple[datetime, str]] = []

    async def expire(pool: Any, appender: Any, now: datetime, *, actor: str) -> list[Any]:
        runs.append((now, actor))
        if len(runs) == 1:
            raise OSError("Kafka away")  # logged; the next turn tries again
        if len(runs) == 3:
            stop.set()
        return []

    monkeypatch.setattr(audit_expiry, "expire", expire)
    async with asyncio.timeout(5):
        await keep_expiring(None, None, 0.01, stop)  # type: ignore[arg-type]
    assert len(runs) == 3 and {actor for _, actor in runs} == {SCHEDULER}
    assert runs[0][0] <= runs[1][0] <= runs[2][0] and runs[0][0].tzinfo is not None


async def test_stop_ends_the_wait_between_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = asyncio.Event()

    async def expire(*args: Any, **kw: Any) -> list[Any]:
        asyncio.get_running_loop().call_later(0.05, stop.set)
        return []

    monkeypatch.setattr(audit_expiry, "expire", expire)
    async with asyncio.timeout(2):  # an hour's interval, ended by stop
        await keep_expiring(None, None, 3600, stop)  # type: ignore[arg-type]
