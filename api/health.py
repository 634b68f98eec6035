"""Dependency probes for ``GET /health``: each reports separately, with its latency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Probe = Callable[[], Awaitable[Any]]


async def run_probe(probe: Probe, timeout_s: float) -> dict[str, Any]:
    """``{"ok": bool, "latency_ms": float, "detail": str}`` for one dependency."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            await probe()
        ok, detail = True, "reachable"
    except TimeoutError:
        ok, detail = False, f"no answer within {timeout_s:g}s"
    except Exception as exc:  # any failure of a dependency is reported, not raised
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return {
        "ok": ok,
        "latency_ms": round((time.perf_counter() - started) * 1000, 1),
        "detail": detail,
    }


async def check_all(probes: Mapping[str, Probe], timeout_s: float = 2.0) -> dict[str, Any]:
    """Run every probe concurrently; ``status`` is ``ok`` only if all are."""
    names = list(probes)
    results = await asyncio.gather(*(run_probe(probes[n], timeout_s) for n in names))
    checks = dict(zip(names, results, strict=True))
    return {"status": "ok" if all(r["ok"] for r in results) else "degraded", "checks": checks}
