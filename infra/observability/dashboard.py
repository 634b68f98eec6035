"""Write ``grafana-dashboard.json`` (Grafana's dashboard model) from the panels below.

``python -m infra.observability.dashboard`` rewrites the file; the unit tests fail when
it is stale, or when a panel queries a metric ``omnihub/metric_names.py`` does not
declare. Import the JSON in Grafana with a Prometheus data source.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "grafana-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# (title, unit, [(legend, PromQL)]) per panel, in reading order, two panels a row.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("API requests by status", "reqps", [
        ("{{status}}", "sum by (status) (rate(omnihub_http_requests_total[5m]))")]),
    ("API latency p50 / p95 by route", "s", [
        ("p95 {{route}}", "histogram_quantile(0.95, sum by (route, le) "
                          "(rate(omnihub_http_request_duration_seconds_bucket[5m])))"),
        ("p50 {{route}}", "histogram_quantile(0.5, sum by (route, le) "
                          "(rate(omnihub_http_request_duration_seconds_bucket[5m])))")]),
    ("Appends by topic", "ops", [
        ("{{topic}} {{outcome}}", "sum by (topic, outcome) (rate(omnihub_appends_total[5m]))")]),
    ("Append latency p95 (acks=all)", "s", [
        ("{{topic}}", "histogram_quantile(0.95, sum by (topic, le) "
                      "(rate(omnihub_append_duration_seconds_bucket[5m])))")]),
    ("Consumer lag", "short", [
        ("{{consumer}} {{topic}}", "sum by (consumer, topic) (omnihub_consumer_lag)")]),
    ("Events folded", "ops", [
        ("{{consumer}}", "sum by (consumer) (rate(omnihub_events_folded_total[5m]))")]),
    ("Dead letters by reason", "short", [
        ("{{consumer}} {{reason}}",
         "sum by (consumer, reason) (increase(omnihub_deadletters_total[15m]))")]),
    ("Workflow duration p95", "s", [
        ("{{workflow}} {{outcome}}", "histogram_quantile(0.95, sum by (workflow, outcome, le) "
                                     "(rate(omnihub_workflow_duration_seconds_bucket[15m])))")]),
    ("Activity duration p95", "s", [
        ("{{activity}}", "histogram_quantile(0.95, sum by (activity, le) "
                         "(rate(omnihub_activity_duration_seconds_bucket[15m])))")]),
    ("Compensations", "short", [
        ("{{activity}}", "sum by (activity) (increase(omnihub_compensations_total[15m]))")]),
    ("Approvals waiting", "short", [
        ("waiting", "sum(omnihub_approvals_waiting)"),
        ("oldest wait (min)", "max(omnihub_approval_oldest_wait_seconds) / 60")]),
    ("Plan cache", "percentunit", [
        ("hit ratio", "sum(rate(omnihub_plan_cache_hits_total[15m])) / "
                      "(sum(rate(omnihub_plan_cache_hits_total[15m])) + "
                      "sum(rate(omnihub_plan_cache_misses_total[15m])))")]),
    ("Model calls saved by the plan cache", "short", [
        ("saved", "sum(increase(omnihub_plan_cache_saved_model_calls_total[1h]))")]),
    ("Rate-limit refusals", "short", [
        ("{{reason}}", "sum by (reason) (increase(omnihub_rate_limit_refusals_total[5m]))")]),
    ("Chain watcher", "short", [
        ("blocks behind the head", "max(omnihub_chain_blocks_behind)"),
        ("{{change}}",
         "sum by (change) (increase(omnihub_chain_membership_changes_total[15m]))")]),
]  # fmt: skip


def panel(index: int, title: str, unit: str, queries: list[tuple[str, str]]) -> dict[str, Any]:
    """One time-series panel; ``index`` places it on a grid of two columns."""
    return {
        "id": index + 1,
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * (index % 2), "y": 8 * (index // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {
                "refId": chr(ord("A") + n),
                "expr": expr,
                "legendFormat": legend,
                "datasource": DATASOURCE,
            }
            for n, (legend, expr) in enumerate(queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    """The whole dashboard model."""
    datasource = {"name": "datasource", "type": "datasource", "query": "prometheus",
                  "label": "Prometheus"}  # fmt: skip
    return {
        "uid": "omnihub-overview",
        "title": "OmniHub",
        "tags": ["omnihub"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [datasource]},
        "panels": [panel(i, *spec) for i, spec in enumerate(PANELS)],
    }


def render() -> str:
    """The JSON text, as written to ``grafana-dashboard.json``."""
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    sys.exit(0)
