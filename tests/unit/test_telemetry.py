"""Tracing, metrics and logging helpers, without servers: the traceparent format, a
batch's parent and links, the span tree, the JSON log line, the API's route labels and
that every declared metric family is served under its declared name."""

from __future__ import annotations

import io
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import yaml
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from api import telemetry as api_telemetry
from infra.config import StackConfig
from infra.platform import SERVICES
from omnihub import REPO_ROOT, metric_names, metrics, tracing
from omnihub.logs import JsonFormatter, log_context, log_format
from omnihub.trace_tree import build_tree, read_spans, render, run_trace_ids, walk
from tests.unit.spans import recording_spans

TP_A = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TP_A2 = b"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"
TP_B = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_traceparent_parses_and_rejects_malformed_values() -> None:
    ctx = tracing.parse_traceparent(TP_A)
    assert ctx is not None and ctx.is_remote
    assert (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    for bad in (None, b"", b"garbage", b"00-xyz-b7ad6b7169203331-01", b"00-" + b"0" * 32 + b"-"):
        assert tracing.parse_traceparent(bad) is None


def test_a_batch_of_one_trace_is_parented_on_it_a_mixed_batch_only_links() -> None:
    parent, links = tracing.batch_parent([TP_A, TP_A2, TP_A, None])
    assert parent is not None and len(links) == 2  # duplicates and untraced records drop
    span_ctx = trace.get_current_span(parent).get_span_context()
    assert f"{span_ctx.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    parent, links = tracing.batch_parent([TP_A, TP_B])
    assert parent is None and len(links) == 2
    assert tracing.batch_parent([None]) == (None, [])


def test_the_current_span_becomes_a_traceparent() -> None:
    assert tracing.current_traceparent() is None  # no span, no header
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("x") as span:
        value = tracing.current_traceparent()
        ctx = span.get_span_context()
    flags = int(ctx.trace_flags)  # sampled, and the SDK's random-trace-id bit
    assert value == f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}".encode()
    assert tracing.parse_traceparent(value) is not None


def _span(span_id: str, name: str, parent: str | None, start: int, **extra: Any) -> dict[str, Any]:
    return {
        "trace_id": extra.pop("trace_id", "t1"),
        "span_id": span_id,
        "parent_id": parent,
        "name": name,
        "service": extra.pop("service", "api"),
        "start_ns": start,
        "end_ns": start + 2_000_000,
        "status": "UNSET",
        "attributes": extra.pop("attributes", {}),
        "links": extra.pop("links", []),
    }


def test_the_tree_holds_the_run_trace_and_the_batches_that_link_into_it() -> None:
    spans = [
        _span("a", "POST /api/v1/goals", None, 0),
        _span("c", "RunActivity:make_plan", "b", 30, attributes={"temporalWorkflowID": "r1"}),
        _span("b", "append", "a", 10, attributes={"omnihub.run_id": "r1"}),
        _span("m", "projector/postgres apply", None, 50, trace_id="t2", links=[{"span_id": "b"}]),
        _span("z", "unrelated", None, 5, trace_id="t3"),
    ]
    assert run_trace_ids(spans, "r1") == {"t1"}
    roots = build_tree(spans, {"t1"})
    order = [(depth, node.span["name"], node.linked) for depth, node in walk(roots)]
    assert order == [
        (0, "POST /api/v1/goals", False),
        (1, "append", False),
        (2, "RunActivity:make_plan", False),
        (2, "projector/postgres apply", True),
    ]
    lines = render(roots)
    assert lines[0] == "POST /api/v1/goals  [api]  +0.0 ms  2.0 ms"
    assert lines[3].startswith("    projector/postgres apply (linked)")


def test_a_json_log_line_carries_trace_span_tenant_and_run() -> None:
    record = logging.LogRecord("omnihub.test", logging.INFO, __file__, 1, "hello %s", ("x",), None)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("s") as span, log_context(tenant_id="acme", run_id="r1"):
        line = json.loads(JsonFormatter().format(record))
        ctx = span.get_span_context()
    assert line["message"] == "hello x" and line["level"] == "INFO"
    assert line["trace_id"] == f"{ctx.trace_id:032x}"
    assert line["span_id"] == f"{ctx.span_id:016x}"
    assert (line["tenant_id"], line["run_id"]) == ("acme", "r1")
    outside = json.loads(JsonFormatter().format(record))
    assert "trace_id" not in outside and "run_id" not in outside


def test_log_format_is_json_unless_a_terminal_or_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("OMNIHUB_LOG_FORMAT", raising=False)
    assert (log_format(io.StringIO()), log_format(Tty())) == ("json", "text")
    monkeypatch.setenv("OMNIHUB_LOG_FORMAT", "text")
    assert log_format(io.StringIO()) == "text"
    monkeypatch.setenv("OMNIHUB_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="OMNIHUB_LOG_FORMAT"):
        log_format(io.StringIO())


def test_every_declared_family_is_served_under_its_name() -> None:
    body, content_type = metrics.exposition()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for metric in metric_names.ALL:
        assert f"# TYPE {metric.name} {metric.kind}" in text, metric.name
    assert "_created" not in text  # one series per counter, not two


def test_the_api_counts_requests_by_route_template_not_raw_path() -> None:
    router = APIRouter()

    @router.get("/runs/{run_id}")
    def run(run_id: str) -> dict[str, str]:
        return {"run_id": run_id}

    app = FastAPI()
    app.include_router(router, prefix="/api/v1")
    api_telemetry.install(app)
    client = TestClient(app)
    for run_id in ("r-1", "r-2"):
        assert client.get(f"/api/v1/runs/{run_id}").status_code == 200
    assert client.get("/not/a/route").status_code == 404
    text = client.get("/metrics").text
    assert 'omnihub_http_requests_total{route="/api/v1/runs/{run_id}",status="200"}' in text
    assert 'omnihub_http_requests_total{route="unmatched",status="404"}' in text
    assert "r-1" not in text  # no unbounded label values


def test_the_stack_gives_each_process_the_metrics_port_prometheus_scrapes(tmp_path: Any) -> None:
    config = yaml.safe_load((REPO_ROOT / "infra/observability/prometheus.yml").read_text())
    local = next(job for job in config["scrape_configs"] if job["job_name"] == "omnihub-local")
    scraped = {
        target["labels"]["process"]: int(target["targets"][0].rsplit(":", 1)[1])
        for target in local["static_configs"]
    }
    moved = StackConfig().with_offset(35000, tmp_path)
    for spec in SERVICES:
        if spec.name == "api":
            assert scraped["api"] == StackConfig().api_port  # /metrics on its HTTP port
            continue
        port = int(spec.env(StackConfig())[metric_names.METRICS_PORT_ENV])
        assert port == scraped[spec.name] == metric_names.LOCAL_METRICS_PORTS[spec.name]
        assert int(spec.env(moved)[metric_names.METRICS_PORT_ENV]) == port + 35000


class _Collector(BaseHTTPRequestHandler):
    """The OTLP/HTTP traces endpoint of a collector: keeps what it is sent."""

    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(ExportTraceServiceResponse().SerializeToString())

    def log_message(self, *args: object) -> None:
        return None


def test_spans_go_to_an_otlp_collector_when_one_is_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(tracing._exporter("api", tmp_path)))
        with provider.get_tracer("test").start_as_current_span("POST /api/v1/goals"):
            pass
        provider.shutdown()
    finally:
        server.shutdown()
    assert not (tmp_path / "traces").exists()  # not to the span files
    path, body = _Collector.received[-1]
    request = ExportTraceServiceRequest.FromString(body)
    names = [s.name for r in request.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert (path, names) == ("/v1/traces", ["POST /api/v1/goals"])


def test_spans_go_to_a_file_per_process_by_default(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(tracing._exporter("worker", tmp_path)))
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("a", attributes={"omnihub.run_id": "r1"}),
        tracer.start_as_current_span("b"),
    ):
        pass
    provider.shutdown()
    (span_file,) = (tmp_path / "traces").glob("worker-*.jsonl")
    spans = read_spans(span_file.parent)
    assert [s["name"] for s in spans] == ["b", "a"]
    assert spans[0]["parent_id"] == spans[1]["span_id"]
    assert run_trace_ids(spans, "r1") == {spans[0]["trace_id"]}


def test_the_api_opens_one_server_span_per_request_its_own() -> None:
    from apps.api import create_app
    from omnihub.settings import Settings

    exporter = recording_spans()
    client = TestClient(create_app(Settings(secret_key="unit-test-secret")))
    tracing._state["enabled"] = True
    try:
        assert client.get("/api/v1/no/such/route").status_code == 404
    finally:
        tracing._state["enabled"] = False
    spans = [(s.name, s.kind, s.parent) for s in exporter.get_finished_spans()]
    # FastAPI's own telemetry is off: no second SERVER span, no fastapi.* operation spans.
    assert spans == [("GET unmatched", trace.SpanKind.SERVER, None)]
