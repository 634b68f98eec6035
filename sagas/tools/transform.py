"""``transform``: a pure step that reshapes values (and echoes, for demos)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sagas.tools.base import JsonObject, ToolCall, ToolDomainError


def _apply(op: str, value: Any) -> Any:
    if op == "echo":
        return value
    if op in ("upper", "lower"):
        if not isinstance(value, str):
            raise ToolDomainError(f"op {op!r} needs a string value")
        return value.upper() if op == "upper" else value.lower()
    if op == "length":
        return len(value if isinstance(value, str | list | dict) else json.dumps(value))
    if op == "merge":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise ToolDomainError("op 'merge' needs a list of objects")
        merged: dict[str, Any] = {}
        for item in value:
            merged.update(item)
        return merged
    raise ToolDomainError(f"unknown transform op {op!r}")


class TransformTool:
    """Applies ``op`` (echo, upper, lower, length, merge) to ``value``.

    It has no effect on the world, so its compensation does nothing.
    """

    name = "transform"
    compensation = "noop"
    description = (
        'Reshape a value. arguments: {"op": "echo"|"upper"|"lower"|"length"|"merge", '
        '"value": any JSON}. Use "${<step_id>.<field>}" to pass an earlier result.'
    )

    async def run(self, call: ToolCall) -> JsonObject:
        op = call.arguments.get("op", "echo")
        if not isinstance(op, str):
            raise ToolDomainError("argument 'op' must be a string")
        return {"value": _apply(op, call.arguments.get("value"))}

    async def compensate(self, call: ToolCall, result: Mapping[str, Any] | None) -> JsonObject:
        return {"noop": True}
