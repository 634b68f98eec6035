"""``http_call``: a webhook call with httpx, undone by an optional compensation call.

Both calls send an ``Idempotency-Key`` header (the step's key; ``<key>:compensate``
for the undo), so a receiver that honours it sees each effect once however often the
activity is retried. 4xx answers (except 408 and 429) are domain errors; 5xx and
connection errors are transient; an error after the request may have left (a read
timeout, a connection dropped mid-answer) is an unknown outcome: the call may have
landed, so a step that then fails for good is compensated. ``timeout_s`` in the
arguments bounds one call (default: the client's).

The undo's body says ``step_outcome``: ``completed`` (with the call's ``result``) or
``unknown`` (``result`` null) when the call was cancelled or abandoned in flight and may
never have arrived; the receiver's 404 or 410 then means nothing to undo, not a failure.
A call abandoned on a timeout could still arrive after its undo: receivers that honour
the idempotency keys can refuse ``<key>`` once ``<key>:compensate`` was seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from sagas.tools.base import (
    JsonObject,
    ToolCall,
    ToolDomainError,
    ToolOutcomeUnknown,
    ToolTransientError,
    require,
)
from sagas.tools.url_policy import UrlPolicy

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
RETRYABLE_4XX = frozenset({408, 425, 429})
NOTHING_THERE = frozenset({404, 410})
MAX_BODY_CHARS = 16_384
# Errors after the request may have reached the server; connect and pool errors mean it
# never left.
SENT_MAYBE = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.RemoteProtocolError)


class HttpCallTool:
    """Calls ``url`` with ``method`` and a JSON body; undoes via ``compensate_url``."""

    name = "http_call"
    compensation = "http_compensate"
    description = (
        'Call a webhook. arguments: {"url": "https://...", "method": "POST", "json": {...}, '
        '"compensate_url": optional URL called (DELETE by default) to undo it}.'
    )

    def __init__(self, client: httpx.AsyncClient, policy: UrlPolicy | None = None) -> None:
        self._client = client
        self._policy = policy or UrlPolicy()

    async def run(self, call: ToolCall) -> JsonObject:
        url = _url(call.arguments, "url")
        await self._policy.check(url)
        method = _method(call.arguments.get("method", "POST"))
        timeout = call.arguments.get("timeout_s")
        return await self._send(
            method,
            url,
            call.arguments.get("json"),
            call.idempotency_key,
            call_timeout_s=float(timeout) if isinstance(timeout, int | float) else None,
        )

    async def compensate(self, call: ToolCall, result: Mapping[str, Any] | None) -> JsonObject:
        if call.arguments.get("compensate_url") is None:
            return {"noop": True}
        url = _url(call.arguments, "compensate_url")
        await self._policy.check(url)
        method = _method(call.arguments.get("compensate_method", "DELETE"))
        body = {
            "run_id": call.run_id,
            "step_id": call.step_id,
            "result": None if result is None else dict(result),
            "step_outcome": "unknown" if result is None else "completed",
        }
        key = call.idempotency_key + ":compensate"
        return await self._send(method, url, body, key, nothing_there_ok=result is None)

    async def _send(
        self,
        method: str,
        url: str,
        body: Any,
        key: str,
        nothing_there_ok: bool = False,
        call_timeout_s: float | None = None,
    ) -> JsonObject:
        extra: dict[str, Any] = {} if call_timeout_s is None else {"timeout": call_timeout_s}
        try:
            response = await self._client.request(
                method, url, json=body, headers={"Idempotency-Key": key}, **extra
            )
        except SENT_MAYBE as exc:
            raise ToolOutcomeUnknown(
                f"{method} {url}: no answer, may have landed: {exc!r}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ToolTransientError(f"{method} {url}: {exc!r}") from exc
        text = response.text[:MAX_BODY_CHARS]
        if nothing_there_ok and response.status_code in NOTHING_THERE:
            body_seen = _body(response, text)
            return {"status": response.status_code, "body": body_seen, "nothing_to_undo": True}
        if response.status_code >= 500 or response.status_code in RETRYABLE_4XX:
            raise ToolTransientError(f"{method} {url} answered {response.status_code}: {text}")
        if response.status_code >= 400:
            raise ToolDomainError(f"{method} {url} answered {response.status_code}: {text}")
        return {"status": response.status_code, "body": _body(response, text)}


def _url(arguments: Mapping[str, Any], key: str) -> str:
    url = str(require(arguments, key, str))
    if not url.startswith(("http://", "https://")):
        raise ToolDomainError(f"{key} must be an http(s) URL, got {url!r}")
    return url


def _method(value: Any) -> str:
    method = str(value).upper()
    if method not in METHODS:
        raise ToolDomainError(f"method must be one of {sorted(METHODS)}, got {value!r}")
    return method


def _body(response: httpx.Response, text: str) -> Any:
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            return response.json()
        except ValueError:
            return text
    return text
