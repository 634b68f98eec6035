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

    async def ends(self) -> dict[tuple[str, int], int] | None:
        """End offsets per partition, or None if Kafka does not answer."""
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self._ttl_s:
                return self._cached[1]
            try:
                async with asyncio.timeout(3):
                    ends = await end_offsets(self._bootstrap, self._topics)
            except Exception:  # a read answers without lag rather than failing
                return None
            self._cached = (time.monotonic(), ends)
            return ends

    async def describe(self, positions: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The freshness block of an API answer, from ``queries.freshness`` rows."""
        ends = await self.ends()
        parts = []
        for p in positions:
            end = ends.get((p["topic"], p["partition"])) if ends is not None else None
            parts.append({**p, "end_offset": end,
                          "lag": None if end is None else max(end - p["next_offset"], 0)})
        if ends is not None:  # partitions the projector has not touched yet
            seen = {(p["topic"], p["partition"]) for p in positions}
            parts += [{"topic": t, "partition": n, "next_offset": 0, "event_time": None,
                       "applied_at": None, "end_offset": e, "lag": e}
                      for (t, n), e in sorted(ends.items()) if (t, n) not in seen and e]
        lags = [p["lag"] for p in parts]
        return {
            "last_applied_at": _latest(p["applied_at"] for p in parts),
            "last_event_time": _latest(p["event_time"] for p in parts),
            "lag_events": None if ends is None else sum(x for x in lags if x is not None),
            "partitions": parts,
        }


def _latest(values: Any) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
