"""The tool registry and the built-in tools that need no server (http via MockTransport)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from sagas.tools import ToolCall, ToolDomainError, ToolRegistry, ToolTransientError, UnknownTool
from sagas.tools.base import ToolOutcomeUnknown
from sagas.tools.http_call import HttpCallTool
from sagas.tools.transform import TransformTool
from sagas.tools.url_policy import UrlPolicy
from sagas.tools.wait import WaitTool


def call(arguments: dict[str, Any], **extra: Any) -> ToolCall:
    return ToolCall("run-1", "acme", "s1", 1, "run-1:s1", arguments, **extra)


async def test_registry_finds_tools_and_refuses_unknown_or_duplicate_names() -> None:
    registry = ToolRegistry([TransformTool(), WaitTool()])
    assert registry.names() == ("transform", "wait")
    assert registry.compensations() == {"transform": "noop", "wait": "noop"}
    assert {d["name"] for d in registry.describe()} == {"transform", "wait"}
    with pytest.raises(UnknownTool):
        registry.get("rm_rf")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(WaitTool())


async def test_a_new_tool_registers_without_touching_anything_else() -> None:
    class Shout:
        name, compensation, description = "shout", "noop", "Shout."

        async def run(self, c: ToolCall) -> dict[str, Any]:
            return {"said": str(c.arguments["text"]).upper()}

        async def compensate(self, c: ToolCall, result: Any) -> dict[str, Any]:
            return {}

    registry = ToolRegistry()
    registry.register(Shout())
    assert await registry.get("shout").run(call({"text": "hi"})) == {"said": "HI"}


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("echo", {"a": 1}, {"a": 1}),
        ("upper", "paris", "PARIS"),
        ("lower", "PARIS", "paris"),
        ("length", [1, 2, 3], 3),
        ("merge", [{"a": 1}, {"b": 2}], {"a": 1, "b": 2}),
    ],
)
async def test_transform_ops(op: str, value: Any, expected: Any) -> None:
    assert await TransformTool().run(call({"op": op, "value": value})) == {"value": expected}


@pytest.mark.parametrize(
    "args", [{"op": "explode"}, {"op": "upper", "value": 3}, {"op": "merge", "value": [1]}]
)
async def test_transform_bad_arguments_are_domain_errors(args: dict[str, Any]) -> None:
    with pytest.raises(ToolDomainError):
        await TransformTool().run(call(args))


async def test_wait_heartbeats_while_waiting() -> None:
    beats: list[Any] = []
    result = await WaitTool(tick_s=0.01).run(call({"seconds": 0.05}, heartbeat=beats.append))
    assert result == {"waited_s": 0.05}
    assert len(beats) >= 3


@pytest.mark.parametrize(
    "args", [{}, {"seconds": "soon"}, {"seconds": True}, {"seconds": -1}, {"seconds": 99999}]
)
async def test_wait_refuses_bad_durations(args: dict[str, Any]) -> None:
    with pytest.raises(ToolDomainError):
        await WaitTool().run(call(args))


def recording_client(status: int, seen: list[httpx.Request], body: Any = None) -> httpx.AsyncClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body if body is not None else {"ok": True})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle))


async def test_http_call_sends_the_idempotency_key_and_returns_the_json_body() -> None:
    seen: list[httpx.Request] = []
    async with recording_client(201, seen, {"id": 7}) as client:
        tool = HttpCallTool(client, UrlPolicy.allow_all())
        result = await tool.run(call({"url": "http://h/x", "json": {"a": 1}}))
    assert result == {"status": 201, "body": {"id": 7}}
    assert seen[0].method == "POST"
    assert seen[0].headers["Idempotency-Key"] == "run-1:s1"
    assert json.loads(seen[0].content) == {"a": 1}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ToolDomainError),
        (404, ToolDomainError),
        (429, ToolTransientError),
        (503, ToolTransientError),
    ],
)
async def test_http_call_classifies_answers(status: int, error: type[Exception]) -> None:
    async with recording_client(status, []) as client:
        with pytest.raises(error):
            await HttpCallTool(client, UrlPolicy.allow_all()).run(call({"url": "http://h/x"}))


async def test_http_call_connection_errors_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        with pytest.raises(ToolTransientError) as caught:
            await HttpCallTool(client, UrlPolicy.allow_all()).run(call({"url": "http://h/x"}))
    assert not isinstance(caught.value, ToolOutcomeUnknown)  # it never left


@pytest.mark.parametrize("error", [httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError])
async def test_http_call_errors_after_sending_are_unknown_outcomes(error: type[Exception]) -> None:
    # Issue 16: the request may have landed; it is compensated like a lost attempt.
    def no_answer(request: httpx.Request) -> httpx.Response:
        raise error("no answer", request=request)  # type: ignore[call-arg]

    async with httpx.AsyncClient(transport=httpx.MockTransport(no_answer)) as client:
        with pytest.raises(ToolOutcomeUnknown):
            await HttpCallTool(client, UrlPolicy.allow_all()).run(call({"url": "http://h/x"}))


@pytest.mark.parametrize(
    "args", [{"url": "file:///etc/passwd"}, {"url": 3}, {"url": "http://h", "method": "BREW"}]
)
async def test_http_call_refuses_bad_arguments(args: dict[str, Any]) -> None:
    async with recording_client(200, []) as client:
        with pytest.raises(ToolDomainError):
            await HttpCallTool(client, UrlPolicy.allow_all()).run(call(args))


async def test_http_compensation_calls_the_undo_url_with_its_own_key() -> None:
    seen: list[httpx.Request] = []
    async with recording_client(200, seen) as client:
        tool = HttpCallTool(client, UrlPolicy.allow_all())
        args = {"url": "http://h/x", "compensate_url": "http://h/x/undo"}
        await tool.compensate(call(args), {"status": 201})
        assert await tool.compensate(call({"url": "http://h/x"}), {}) == {"noop": True}
    assert len(seen) == 1
    assert (seen[0].method, str(seen[0].url)) == ("DELETE", "http://h/x/undo")
    assert seen[0].headers["Idempotency-Key"] == "run-1:s1:compensate"


async def test_http_compensation_of_an_unknown_outcome_tolerates_nothing_there() -> None:
    seen: list[httpx.Request] = []
    args = {"url": "http://h/x", "compensate_url": "http://h/x/undo"}
    async with recording_client(404, seen) as client:
        tool = HttpCallTool(client, UrlPolicy.allow_all())
        undone = await tool.compensate(call(args), None)
        with pytest.raises(ToolDomainError):  # undoing what surely happened: a real failure
            await tool.compensate(call(args), {"status": 201})
    assert undone == {"status": 404, "body": {"ok": True}, "nothing_to_undo": True}
    assert json.loads(seen[0].content) == {
        "run_id": "run-1",
        "step_id": "s1",
        "result": None,
        "step_outcome": "unknown",
    }
    assert json.loads(seen[1].content)["step_outcome"] == "completed"
