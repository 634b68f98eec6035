"""Tracing: one OpenTelemetry trace from the goal's HTTP request to every effect.

:func:`setup_tracing` installs a tracer provider for a process (its ``service.name`` is
the process name). Spans leave through a :class:`BatchSpanProcessor` (never blocking the
caller) to an OTLP/HTTP collector when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``..._TRACES_ENDPOINT``) is set, else to a JSON-lines file per process under
``<state_dir>/traces`` that ``omnihub trace RUN`` reads. ``OTEL_SDK_DISABLED=true``
turns tracing off. A process that never calls :func:`setup_tracing` (unit tests,
benchmarks) keeps OpenTelemetry's no-op provider, and :func:`enabled` is False.

Across Kafka the context travels as a W3C ``traceparent`` record header; the helpers
here format and parse it without the propagator machinery, because the producer and
the consumer call them on hot paths.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, TraceFlags

TRACEPARENT = "traceparent"  # the Kafka record header, as W3C Trace Context names it
TRACER_NAME = "omnihub"
RUN_ID = "omnihub.run_id"  # the span attribute ``omnihub trace RUN`` looks for
TENANT_ID = "omnihub.tenant_id"
MAX_LINKS = 128  # the SDK's default limit of links per span

_state = {"enabled": False}
_tracer: dict[object, trace.Tracer] = {}  # per provider: the provider is set once


def enabled() -> bool:
    """Whether this process records spans (so hot paths can skip the work when not)."""
    return _state["enabled"]


def tracer() -> trace.Tracer:
    """OmniHub's tracer (the no-op one until :func:`setup_tracing`); kept once made,
    since looking it up costs about as much as starting a span."""
    cached = _tracer.get(trace.get_tracer_provider())
    if cached is None:
        _tracer.clear()
        cached = _tracer[trace.get_tracer_provider()] = trace.get_tracer(TRACER_NAME)
    return cached


def traces_dir(state_dir: Path) -> Path:
    """Where the file exporter writes: one ``<service>-<pid>.jsonl`` per process."""
    return state_dir / "traces"


def setup_tracing(service: str, state_dir: Path) -> TracerProvider | None:
    """Install the process's tracer provider once; None when tracing is disabled."""
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current  # already set up in this process (the API's factory runs twice)
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(_exporter(service, state_dir)))
    trace.set_tracer_provider(provider)
    _state["enabled"] = True
    return provider


def _exporter(service: str, state_dir: Path) -> SpanExporter:
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        # Imported only when chosen: it brings protobuf and requests.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    path = traces_dir(state_dir) / f"{service}-{os.getpid()}.jsonl"
    return JsonLinesSpanExporter(path)


class JsonLinesSpanExporter(SpanExporter):
    """Writes each finished span as one JSON line (see :func:`span_record`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(s), separators=(",", ":")) + "\n" for s in spans)
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """A finished span as the file exporter stores it (what :mod:`omnihub.trace_tree` reads)."""
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "trace_id": f"{ctx.trace_id:032x}" if ctx else "",
        "span_id": f"{ctx.span_id:016x}" if ctx else "",
        "parent_id": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "service": span.resource.attributes.get("service.name", ""),
        "kind": span.kind.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {k: _plain(v) for k, v in (span.attributes or {}).items()},
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def current_traceparent() -> bytes | None:
    """The current span's context as a ``traceparent`` header value, or None."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}".encode()


def parse_traceparent(value: bytes | str | None) -> SpanContext | None:
    """The remote span context a ``traceparent`` value names, or None if malformed."""
    if not value:
        return None
    text = value.decode(errors="replace") if isinstance(value, bytes) else value
    parts = text.strip().split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16:
        return None
    try:
        ctx = SpanContext(
            int(parts[1], 16), int(parts[2], 16), True, TraceFlags(int(parts[3], 16) & 1)
        )
    except ValueError:
        return None
    return ctx if ctx.is_valid else None


def context_of(span_context: SpanContext) -> Context:
    """A context whose current span is ``span_context`` (to parent a new span on it)."""
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def batch_parent(traceparents: Sequence[bytes | None]) -> tuple[Context | None, list[Link]]:
    """Parent and links for a span that handles a batch of records.

    Every distinct record context becomes a link (at most :data:`MAX_LINKS`). When they
    all belong to one trace the first also becomes the parent, so a run's projection
    sits inside the run's trace; a batch mixing runs starts a trace of its own that
    links into each of them. The trace ids are compared on the raw header bytes and
    only the linked values are parsed: this runs once per batch, over every record.
    """
    distinct = list(dict.fromkeys(v for v in traceparents if v))
    links = []
    for value in distinct[:MAX_LINKS]:
        ctx = parse_traceparent(value)
        if ctx is not None:
            links.append(Link(ctx))
    if links and len({v[3:35] for v in distinct}) == 1:
        return context_of(links[0].context), links
    return None, links
