"""``omnihub trace RUN``: a run's spans as a tree, from the processes' span files."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from omnihub.settings import get_settings
from omnihub.trace_tree import build_tree, read_spans, render, run_trace_ids, walk
from omnihub.tracing import traces_dir


def register(sub: Any) -> None:
    """``omnihub trace RUN [--dir D] [--json]``."""
    cmd = sub.add_parser("trace", help="print the span tree of a run (from the span files)")
    cmd.add_argument("run_id", help="the run id a goal's 202 answer gave")
    cmd.add_argument("--dir", type=Path, help="span files (default <state dir>/traces)")
    cmd.add_argument("--json", action="store_true", help="the spans as JSON lines, tree order")
    cmd.set_defaults(handler=_trace)


def _trace(args: argparse.Namespace) -> int:
    folder = args.dir or traces_dir(get_settings().state_dir)
    spans = read_spans(folder) if folder.is_dir() else []
    traces = run_trace_ids(spans, args.run_id)
    if not traces:
        print(f"no spans of run {args.run_id} in {folder}", file=sys.stderr)
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            print("spans go to the OTLP collector: look the run up there", file=sys.stderr)
        return 1
    roots = build_tree(spans, traces)
    if args.json:
        for depth, node in walk(roots):
            print(json.dumps({"depth": depth, "linked": node.linked, **node.span}))
        return 0
    print(f"run {args.run_id}: trace {', '.join(sorted(traces))}")
    for line in render(roots):
        print(line)
    return 0
