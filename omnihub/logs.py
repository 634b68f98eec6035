"""Logging for every process: JSON lines for machines, text for a terminal.

``LOG_LEVEL`` sets the level; ``OMNIHUB_LOG_FORMAT`` is ``json`` or ``text`` (default:
text on a terminal, JSON otherwise, e.g. under the stack or in a pod). A JSON line holds
the time, level, logger and message, the current span's ``trace_id`` and ``span_id``
(so a log line leads to its trace), the ``tenant_id`` and ``run_id`` that
:func:`log_context` set for the code around it, and a record's own ``fields`` (a mapping,
or a callable returning one, called only when the line is written).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace

FORMAT_ENV = "OMNIHUB_LOG_FORMAT"
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"

_tenant: ContextVar[str | None] = ContextVar("omnihub_log_tenant", default=None)
_run: ContextVar[str | None] = ContextVar("omnihub_log_run", default=None)


@contextmanager
def log_context(*, tenant_id: str | None = None, run_id: str | None = None) -> Iterator[None]:
    """Tag every log line written inside with the tenant and the run (where known)."""
    tokens = []
    if tenant_id:
        tokens.append((_tenant, _tenant.set(tenant_id)))
    if run_id:
        tokens.append((_run, _run.set(run_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the trace, span, tenant and run where known."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            line["trace_id"] = f"{ctx.trace_id:032x}"
            line["span_id"] = f"{ctx.span_id:016x}"
        tenant, run = _tenant.get(), _run.get()
        if tenant:
            line["tenant_id"] = tenant
        if run:
            line["run_id"] = run
        fields = getattr(record, "fields", None)  # e.g. the API's access line
        if fields is not None:
            line.update(fields() if callable(fields) else fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def log_format(stream: Any = None) -> str:
    """``OMNIHUB_LOG_FORMAT``, else text on a terminal and JSON otherwise."""
    chosen = os.environ.get(FORMAT_ENV, "").strip().lower()
    if chosen in ("json", "text"):
        return chosen
    if chosen:
        raise ValueError(f"{FORMAT_ENV} must be json or text, got {chosen!r}")
    stream = stream or sys.stderr
    return "text" if getattr(stream, "isatty", lambda: False)() else "json"


def setup_logging(default_level: int = logging.INFO) -> None:
    """Configure the root logger once per process (``LOG_LEVEL``, ``OMNIHUB_LOG_FORMAT``)."""
    level = os.environ.get("LOG_LEVEL", logging.getLevelName(default_level)).upper()
    handler = logging.StreamHandler(sys.stderr)
    if log_format(sys.stderr) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
