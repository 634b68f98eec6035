"""The Prometheus instruments of :mod:`omnihub.metric_names`, and serving them.

One instrument per declared family, in prometheus-client's default registry: a process
updates the ones it owns (the producer its appends, a consumer its lag and folds, the
worker its workflows and activities, the API its requests), and serves them all. The
API serves ``/metrics`` on its HTTP port; every other process calls
:func:`serve_metrics`, which serves ``/metrics`` (and ``/health``) on
``OMNIHUB_METRICS_PORT`` from a daemon thread, so a scrape never waits on the event loop.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)

from omnihub import metric_names as names

log = logging.getLogger(__name__)

# Seconds: an append acknowledges in milliseconds, a workflow may wait for a human.
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


# A ``_created`` sample per counter and histogram doubles the series and no rule uses it.
disable_created_metrics()  # type: ignore[no-untyped-call]


def _instrument(metric: names.Metric, buckets: tuple[float, ...] = _FAST) -> Any:
    # prometheus-client adds _total to a counter's samples itself: give the base name.
    if metric.kind == "counter":
        return Counter(metric.name.removesuffix("_total"), metric.help, metric.labels)
    if metric.kind == "gauge":
        return Gauge(metric.name, metric.help, metric.labels)
    return Histogram(metric.name, metric.help, metric.labels, buckets=buckets)


HTTP_REQUESTS = _instrument(names.HTTP_REQUESTS)
HTTP_REQUEST_DURATION = _instrument(names.HTTP_REQUEST_DURATION)
APPENDS = _instrument(names.APPENDS)
APPEND_DURATION = _instrument(names.APPEND_DURATION)
CONSUMER_LAG = _instrument(names.CONSUMER_LAG)
EVENTS_FOLDED = _instrument(names.EVENTS_FOLDED)
DEADLETTERS = _instrument(names.DEADLETTERS)
WORKFLOW_DURATION = _instrument(names.WORKFLOW_DURATION, _SLOW)
ACTIVITY_DURATION = _instrument(names.ACTIVITY_DURATION, _SLOW)
COMPENSATIONS = _instrument(names.COMPENSATIONS)
APPROVALS_WAITING = _instrument(names.APPROVALS_WAITING)
APPROVAL_OLDEST_WAIT = _instrument(names.APPROVAL_OLDEST_WAIT)
PLAN_CACHE_HITS = _instrument(names.PLAN_CACHE_HITS)
PLAN_CACHE_MISSES = _instrument(names.PLAN_CACHE_MISSES)
PLAN_CACHE_SAVED_MODEL_CALLS = _instrument(names.PLAN_CACHE_SAVED_MODEL_CALLS)
RATE_LIMIT_REFUSALS = _instrument(names.RATE_LIMIT_REFUSALS)
CHAIN_BLOCKS_BEHIND = _instrument(names.CHAIN_BLOCKS_BEHIND)
CHAIN_MEMBERSHIP_CHANGES = _instrument(names.CHAIN_MEMBERSHIP_CHANGES)


def exposition() -> tuple[bytes, str]:
    """The registry in the text format, and its content type (for the API's route)."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def metrics_port(default: int = names.DEFAULT_METRICS_PORT) -> int:
    """``OMNIHUB_METRICS_PORT``, else ``default``."""
    raw = os.environ.get(names.METRICS_PORT_ENV)
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"{names.METRICS_PORT_ENV} must be a port number, got {raw!r}") from None


def serve_metrics(port: int | None = None, host: str = "0.0.0.0") -> int | None:
    """Serve ``/metrics`` on ``port`` (default :func:`metrics_port`); 0 or -1 turns it
    off. A port already taken is logged, not fatal: metrics never stop a process."""
    port = metrics_port() if port is None else port
    if port <= 0:
        return None
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("cannot serve metrics on port %d: %s", port, exc)
        return None
    return port
