"""A run's trace as a tree, from the spans the file exporter wrote (``omnihub trace RUN``).

A run's spans are found by the run id they carry: ``omnihub.run_id`` (the append, the
bridge) or ``temporalWorkflowID`` (Temporal's spans; the workflow id is the run id).
Their traces are shown whole, parent above child, siblings in start order. A span of
another trace that links into them (a projector batch that mixed several runs) is shown
under the span it links to, marked ``linked``. Pure: reading files is the caller's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RUN_KEYS = ("omnihub.run_id", "temporalWorkflowID")


@dataclass
class Node:
    """One span and the spans under it."""

    span: dict[str, Any]
    linked: bool = False
    children: list[Node] = field(default_factory=list)


def read_spans(folder: Path) -> list[dict[str, Any]]:
    """Every span of every ``*.jsonl`` file in ``folder`` (torn last lines skipped)."""
    spans = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                spans.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
    return spans


def run_trace_ids(spans: Iterable[dict[str, Any]], run_id: str) -> set[str]:
    """The traces holding a span of ``run_id``."""
    return {
        s["trace_id"]
        for s in spans
        if any(s.get("attributes", {}).get(k) == run_id for k in RUN_KEYS)
    }


def build_tree(spans: list[dict[str, Any]], trace_ids: set[str]) -> list[Node]:
    """The roots of the traces ``trace_ids``, with linked spans of other traces hung in."""
    nodes = {s["span_id"]: Node(s) for s in spans if s["trace_id"] in trace_ids}
    for span in spans:
        if span["trace_id"] in trace_ids:
            continue
        target = next((x["span_id"] for x in span.get("links", ()) if x["span_id"] in nodes), None)
        if target is not None:
            nodes.setdefault(span["span_id"], Node(span, linked=True))
    roots: list[Node] = []
    for node in nodes.values():
        parent = _parent_of(node, nodes)
        (nodes[parent].children if parent else roots).append(node)
    for node in nodes.values():
        node.children.sort(key=lambda n: n.span["start_ns"])
    return sorted(roots, key=lambda n: n.span["start_ns"])


def _parent_of(node: Node, nodes: dict[str, Node]) -> str | None:
    if node.linked:
        return next(str(x["span_id"]) for x in node.span["links"] if x["span_id"] in nodes)
    parent = node.span.get("parent_id")
    return str(parent) if parent in nodes else None


def walk(roots: list[Node], depth: int = 0) -> Iterator[tuple[int, Node]]:
    """Every node, depth first, with its depth."""
    for node in roots:
        yield depth, node
        yield from walk(node.children, depth + 1)


def render(roots: list[Node]) -> list[str]:
    """One line per span: name, process, start after the first span and duration."""
    if not roots:
        return []
    origin = min(n.span["start_ns"] for _, n in walk(roots))
    lines = []
    for depth, node in walk(roots):
        span = node.span
        start_ms = (span["start_ns"] - origin) / 1e6
        took_ms = ((span.get("end_ns") or span["start_ns"]) - span["start_ns"]) / 1e6
        mark = " (linked)" if node.linked else ""
        error = " ERROR" if span.get("status") == "ERROR" else ""
        lines.append(
            f"{'  ' * depth}{span['name']}{mark}  [{span.get('service', '?')}]"
            f"  +{start_ms:.1f} ms  {took_ms:.1f} ms{error}"
        )
    return lines
