"""How fresh a read model is: its positions against the log's end offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from streams.replay import end_offsets


class FreshnessProbe:
    """Caches the log's end offsets briefly, so every read can state its lag cheaply."""

    def __init__(self, bootstrap: str, topics: Sequence[str], ttl_s: float = 1.0) -> None:
        self._bootstrap = bootstrap
        self._topics = list(topics)
        self._ttl_s = ttl_s
        self._cached: tuple[float, dict[tuple[str, int], int]] | None = None
        self._lock = asyncio.Lock()

    async def ends(self, since: float | None = None) -> dict[tuple[str, int], int] | None:
        """End offsets per partition, or None if Kafka does not answer.

        With ``since`` (a ``time.monotonic()`` reading), only offsets asked of Kafka after
        that moment do: a caller who saw the log at ``since`` (a dashboard whose stream was
        positioned before its read) must never be told "caught up" against older ends.
        Callers waiting together share one fetch.
        """
        async with self._lock:
            if self._cached and (
                self._cached[0] >= since
                if since is not None
                else time.monotonic() - self._cached[0] < self._ttl_s
            ):
                return self._cached[1]
            asked = time.monotonic()
            try:
                async with asyncio.timeout(3):
                    ends = await end_offsets(self._bootstrap, self._topics)
            except Exception:  # a read answers without lag rather than failing
                return None
            self._cached = (asked, ends)
            return ends

    async def describe(
        self, positions: Sequence[dict[str, Any]], since: float | None = None
    ) -> dict[str, Any]:
        """The freshness block of an API answer, from ``queries.freshness`` rows.

        Read the positions before the data they describe, and pass when (``since``): the
        projector commits effects and positions together, so the data then holds at
        least what the positions say, and ``caught_up`` is true only if that reaches
        the log's end as Kafka gave it after ``since``.

        Times and whether each partition is caught up, never offsets or lag counts: the
        log is shared by every tenant, so its offsets would tell one tenant the others'
        volume. ``caught_up`` is None when Kafka does not answer. Operators see offsets
        and lag with ``omnihub projections status``.
        """
        ends = await self.ends(since)
        parts = []
        for p in (p for p in positions if p["topic"] in self._topics):
            end = ends.get((p["topic"], p["partition"])) if ends is not None else None
            parts.append(_part(p, None if ends is None else (end or 0) <= p["next_offset"]))
        if ends is not None:  # partitions the projector has not touched yet
            seen = {(p["topic"], p["partition"]) for p in positions}
            parts += [
                _part({"topic": t, "partition": n}, False)
                for (t, n), e in sorted(ends.items())
                if (t, n) not in seen and e
            ]
        return {
            "last_applied_at": _latest(p["applied_at"] for p in parts),
            "last_event_time": _latest(p["event_time"] for p in parts),
            "caught_up": None if ends is None else all(p["caught_up"] for p in parts),
            "partitions": parts,
        }


def _part(position: dict[str, Any], caught_up: bool | None) -> dict[str, Any]:
    return {
        "topic": position["topic"],
        "partition": position["partition"],
        "applied_at": position.get("applied_at"),
        "event_time": position.get("event_time"),
        "caught_up": caught_up,
    }


def _latest(values: Any) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
