"""The step tool port and its registry.

A tool is the only code that touches the world during a run. Each tool knows how to
undo itself (its compensation), and both directions take an idempotency key derived
from ``run_id`` and ``step_id``, so a retried activity never doubles an effect. New
tools are registered in a :class:`ToolRegistry`; the workflow never names a tool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

JsonObject = dict[str, Any]


class ToolError(Exception):
    """A tool failed. ``retryable`` tells the saga whether another attempt may help."""

    retryable: bool = True


class ToolDomainError(ToolError):
    """The request itself is wrong (bad arguments, 4xx, refused): retrying cannot help."""

    retryable = False


class ToolTransientError(ToolError):
    """The world was unavailable (timeout, 5xx, connection refused): retry later."""


class ToolOutcomeUnknown(ToolTransientError):
    """The request left and no answer came back (a read timeout, a dropped connection):
    it may have had its effect. Retried like a transient error; if the step then fails
    for good, it is compensated as a step of unknown outcome."""


class UnknownTool(ToolDomainError):
    """No tool of that name is registered."""


def _no_heartbeat(*details: Any) -> None:
    return None


@dataclass(frozen=True)
class ToolCall:
    """One invocation of a tool for one step of one run.

    ``inputs`` holds the results of the steps this one depends on, by step id.
    ``idempotency_key`` is stable across retries of the same step.
    """

    run_id: str
    tenant_id: str
    step_id: str
    attempt: int
    idempotency_key: str
    arguments: Mapping[str, Any]
    inputs: Mapping[str, Any] = field(default_factory=dict)
    heartbeat: Callable[..., None] = _no_heartbeat


class Tool(Protocol):
    """A step tool. ``compensation`` names its undo (shown in plans and events)."""

    name: str
    compensation: str
    description: str

    async def run(self, call: ToolCall) -> JsonObject:
        """Do the step's effect once per idempotency key; return a JSON object."""
        ...

    async def compensate(self, call: ToolCall, result: Mapping[str, Any] | None) -> JsonObject:
        """Undo what ``run`` did (``result`` is what it returned); idempotent too.

        ``result`` is ``None`` when the step's outcome is unknown: ``run`` was cancelled or
        abandoned (timed out, worker lost) before it returned, perhaps before it did
        anything. Undo whatever it may have done, and succeed when there is nothing to undo.
        """
        ...


class ToolRegistry:
    """The tools a worker can run, by name."""

    def __init__(self, tools: Iterable[Tool] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.register(tool)

    def register(self, tool: Tool) -> None:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name!r} is already registered")
        self._tools[tool.name] = tool

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownTool(f"no tool named {name!r}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._tools)

    def compensations(self) -> dict[str, str]:
        """Each tool's compensation name, by tool name (what plan validation needs)."""
        return {name: tool.compensation for name, tool in self._tools.items()}

    def describe(self) -> list[dict[str, str]]:
        """Name, description and compensation of every tool, for planners' prompts."""
        return [
            {"name": t.name, "description": t.description, "compensation": t.compensation}
            for t in self._tools.values()
        ]


def require(arguments: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    """``arguments[key]`` if present and of ``kind``; else a :class:`ToolDomainError`."""
    value = arguments.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        raise ToolDomainError(f"argument {key!r} must be {_kind_name(kind)}, got {value!r}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_name(kind: type | tuple[type, ...]) -> str:
    return " or ".join(k.__name__ for k in _kinds(kind))
