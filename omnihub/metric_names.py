"""The Prometheus metrics OmniHub's processes serve: names, types and labels, once.

No dependencies, so any process (and the alert rules, the Grafana dashboard and their
tests in ``infra/observability/``) can import it. The instrumentation uses these names
as they are; ``infra/observability/METRICS.md`` says what each one means and which
process serves it. Durations are histograms in seconds, counts are counters ending in
``_total`` (Prometheus naming conventions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["counter", "gauge", "histogram"]

# Where a process serves /metrics: the API on its HTTP port; every other process on
# this port (moved by the stack's port offset locally), which also answers /health.
METRICS_PORT_ENV = "OMNIHUB_METRICS_PORT"
DEFAULT_METRICS_PORT = 9400
# The local stack's port per process (before its port offset), as prometheus.yml scrapes.
LOCAL_METRICS_PORTS = {
    "gateway": 9401,
    "worker": 9402,
    "saga-bridge": 9403,
    "plan-cache": 9404,
    "projector": 9405,
    "notifier": 9406,
    "chain-watcher": 9407,
}


@dataclass(frozen=True)
class Metric:
    """One metric family as Prometheus exposes it."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str


HTTP_REQUESTS = Metric(
    "omnihub_http_requests_total",
    "counter",
    ("route", "status"),
    "HTTP requests answered, by route template and status code.",
)
HTTP_REQUEST_DURATION = Metric(
    "omnihub_http_request_duration_seconds",
    "histogram",
    ("route",),
    "Time to answer an HTTP request, by route template.",
)
APPENDS = Metric(
    "omnihub_appends_total",
    "counter",
    ("topic", "outcome"),
    "Events appended to the log; outcome is ok or unavailable.",
)
APPEND_DURATION = Metric(
    "omnihub_append_duration_seconds",
    "histogram",
    ("topic",),
    "Time from send to acknowledgement (acks=all) of an append.",
)
CONSUMER_LAG = Metric(
    "omnihub_consumer_lag",
    "gauge",
    ("consumer", "topic", "partition"),
    "Records in the partition the consumer has not applied yet.",
)
EVENTS_FOLDED = Metric(
    "omnihub_events_folded_total",
    "counter",
    ("consumer",),
    "Events a consumer applied to its read model or handler.",
)
DEADLETTERS = Metric(
    "omnihub_deadletters_total",
    "counter",
    ("consumer", "reason"),
    "Records sent to the dead-letter topic, by consumer and reason.",
)
WORKFLOW_DURATION = Metric(
    "omnihub_workflow_duration_seconds",
    "histogram",
    ("workflow", "outcome"),
    "Run time of a workflow from start to its end (completed, failed, cancelled).",
)
ACTIVITY_DURATION = Metric(
    "omnihub_activity_duration_seconds",
    "histogram",
    ("activity", "outcome"),
    "Run time of one activity attempt.",
)
COMPENSATIONS = Metric(
    "omnihub_compensations_total",
    "counter",
    ("activity",),
    "Compensating actions run while a saga unwound.",
)
APPROVALS_WAITING = Metric(
    "omnihub_approvals_waiting",
    "gauge",
    (),
    "Runs waiting for a human approval now.",
)
APPROVAL_OLDEST_WAIT = Metric(
    "omnihub_approval_oldest_wait_seconds",
    "gauge",
    (),
    "How long the oldest approval still waiting has waited (0 when none waits).",
)
PLAN_CACHE_HITS = Metric(
    "omnihub_plan_cache_hits_total",
    "counter",
    (),
    "Plans served from the semantic plan cache.",
)
PLAN_CACHE_MISSES = Metric(
    "omnihub_plan_cache_misses_total",
    "counter",
    (),
    "Plan-cache lookups that found no fitting plan (the planner ran).",
)
PLAN_CACHE_SAVED_MODEL_CALLS = Metric(
    "omnihub_plan_cache_saved_model_calls_total",
    "counter",
    (),
    "Model calls a plan-cache hit made unnecessary.",
)
RATE_LIMIT_REFUSALS = Metric(
    "omnihub_rate_limit_refusals_total",
    "counter",
    ("reason",),
    "Requests the gateway refused: rate (per minute) or concurrency (in-flight slots).",
)

CHAIN_BLOCKS_BEHIND = Metric(
    "omnihub_chain_blocks_behind",
    "gauge",
    (),
    "Blocks between the chain's head and the last block the chain watcher followed.",
)
CHAIN_MEMBERSHIP_CHANGES = Metric(
    "omnihub_chain_membership_changes_total",
    "counter",
    ("change",),
    "membership_changed events the chain watcher appended, by change (retracted: reorgs).",
)


ALL: tuple[Metric, ...] = (
    HTTP_REQUESTS,
    HTTP_REQUEST_DURATION,
    APPENDS,
    APPEND_DURATION,
    CONSUMER_LAG,
    EVENTS_FOLDED,
    DEADLETTERS,
    WORKFLOW_DURATION,
    ACTIVITY_DURATION,
    COMPENSATIONS,
    APPROVALS_WAITING,
    APPROVAL_OLDEST_WAIT,
    PLAN_CACHE_HITS,
    PLAN_CACHE_MISSES,
    PLAN_CACHE_SAVED_MODEL_CALLS,
    RATE_LIMIT_REFUSALS,
    CHAIN_BLOCKS_BEHIND,
    CHAIN_MEMBERSHIP_CHANGES,
)


def series_names(metric: Metric) -> tuple[str, ...]:
    """The sample names a family exposes (a histogram's ``_bucket``, ``_sum``, ``_count``)."""
    if metric.kind == "histogram":
        return tuple(metric.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return (metric.name,)
