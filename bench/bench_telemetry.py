"""What tracing and metrics add on the hot paths, per call, beside a bare baseline.

- one ``append_many`` call's wrapper (:func:`streams.telemetry.appending`: the span, the
  traceparent and the counters), against an empty ``with`` block;
- one handler batch's span (:func:`streams.telemetry.handling`) over 500 records of one
  run and of 500 runs (500 links), against an empty ``with`` block;
- reading the ``traceparent`` header of a record (done per record while decoding).

Measured first with tracing off (OpenTelemetry's no-op provider: metrics only), then
on, with the SDK, a BatchSpanProcessor and an exporter that drops the spans (so the
figure is the caller's cost, not the disk's). Prints a table and a final JSON line.

    .venv/bin/python bench/bench_telemetry.py [--calls 20000]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from omnihub import tracing
from streams.telemetry import appending, handling, traceparent_of
from tests.factories import goal_received

BATCH = 500


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def per_call_us(fn: Callable[[], None], calls: int) -> float:
    """Microseconds per call of ``fn`` (best of three rounds)."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, time.perf_counter() - started)
    return best / calls * 1e6


def measure(calls: int) -> dict[str, float]:
    events, topics = [goal_received("r-bench")], ["omnihub.runs.v1"]
    one_run = [b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"] * BATCH
    many = [f"00-{i + 1:032x}-{i + 1:016x}-01".encode() for i in range(BATCH)]
    headers = [("event_type", b"goal_received"), ("event_id", b"x"), ("traceparent", many[0])]

    def bare() -> None:
        with contextlib.nullcontext():
            pass

    def append() -> None:
        with appending(events, topics):
            pass

    def batch_one() -> None:
        with handling("bench", "h", "t", 0, one_run):
            pass

    def batch_many() -> None:
        with handling("bench", "h", "t", 0, many):
            pass

    return {
        "bare_with_us": per_call_us(bare, calls),
        "append_us": per_call_us(append, calls),
        "batch_one_run_us": per_call_us(batch_one, calls // 10),
        "batch_500_runs_us": per_call_us(batch_many, calls // 50),
        "traceparent_of_us": per_call_us(lambda: traceparent_of(headers) and None, calls),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20000)
    calls = parser.parse_args().calls
    off = measure(calls)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop()))
    trace.set_tracer_provider(provider)
    tracing._state["enabled"] = True  # what setup_tracing does, without its file exporter
    on = measure(calls)
    provider.shutdown()
    print(f"{'per call (µs)':<22}{'tracing off':>14}{'tracing on':>14}")
    for key in off:
        print(f"{key:<22}{off[key]:>14.2f}{on[key]:>14.2f}")
    print(f"(a batch is {BATCH} records; bare_with_us is the empty `with` baseline)")
    print(json.dumps({"off": off, "on": on, "batch_records": BATCH}))


if __name__ == "__main__":
    main()
