"""The OpenAPI document, told the truth about errors.

FastAPI documents only the success answer and a 422 it shapes as ``HTTPValidationError``
(``application/json``, an array ``detail``). OmniHub answers every error with
``application/problem+json`` (:class:`api.problems.ProblemDetails`, a string
``detail``), so this rewrites each operation's responses: the 422 becomes a problem, and
every other status the operation can answer is listed. Generic statuses follow from what
the operation is (any request can be too large; a guarded one can be unauthenticated,
forbidden, limited, or find the limiter down); the rest are in :data:`ROUTE_STATUSES`,
per route. The Schemathesis test (tests/e2e/test_api_contract.py) checks every answer the
running API gives against this document, so a status missing here fails it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi

from api.problems import PROBLEM_JSON, ProblemDetails

PROBLEM_REF = {"$ref": "#/components/schemas/ProblemDetails"}
SECURITY_SCHEMES = {
    "bearerAuth": {"type": "http", "scheme": "bearer", "description": "An OmniHub API key."},
    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
}

STATUS_TEXT = {
    400: "The request is malformed (e.g. a cursor this API did not return).",
    401: "No valid API key.",
    403: "The key lacks the scope, or names another tenant.",
    404: "Not found for this tenant (yet).",
    409: "Conflicts with the current state.",
    413: "The request body is too large.",
    422: "A parameter or the body is invalid, or a query parameter is repeated; ``detail``"
    " names the first field.",
    429: "Over the key's or the tenant's rate or in-flight limit (its tier's); ``entitlement``"
    " names which; see the ``RateLimit-*`` headers.",
    503: "A dependency (log, read models, limiter, kill switches, tiers) cannot answer now.",
}

ROUTE_STATUSES: dict[tuple[str, str], dict[int, str]] = {
    ("POST", "/api/v1/goals"): {
        402: "The tenant's tier has no goals left this month (``goals_per_month``) or does not"
        " allow the approval timeout asked for (``approval_timeout_s``); ``entitlement``"
        " names it, ``upgrade_to`` the least tier that allows it.",
        409: "A request with this Idempotency-Key is still in progress.",
        422: "Invalid, or the Idempotency-Key was used for a different goal.",
        503: "The log, the idempotency store or the kill switches cannot answer, or new "
        "goals are switched off (``feature-disabled``).",
    },
    ("POST", "/api/v1/goals:batch"): {413: "The body, or the number of goals, is too large."},
    ("PUT", "/api/v1/plan-templates/sharing"): {
        402: "The tenant's tier does not share plan templates (``plan_template_sharing``)."
    },
    ("POST", "/api/v1/keys"): {422: "Invalid, or an unknown scope."},
    ("POST", "/api/v1/keys/{key_id}/rotate"): {404: "No such key.", 409: "The key is revoked."},
    ("POST", "/api/v1/keys/{key_id}/revoke"): {404: "No such key."},
    ("POST", "/api/v1/approvals/{approval_id}"): {
        404: "No such approval.",
        409: "The approval is already decided.",
    },
    ("GET", "/api/v1/approvals/{approval_id}"): {404: "No such approval."},
    ("POST", "/api/v1/runs/{run_id}/cancel"): {
        404: "No such run.",
        409: "The run has already finished.",
    },
    ("GET", "/api/v1/runs"): {400: "The cursor is not one this API returned."},
    ("GET", "/api/v1/approvals"): {400: "The cursor is not one this API returned."},
    ("GET", "/api/v1/audit"): {
        400: "The cursor is not one this API returned (or another chain's)."
    },
    ("GET", "/api/v1/runs/{run_id}"): {404: "No such run for this tenant (yet)."},
    ("DELETE", "/api/v1/notifications/channels/{channel_id}"): {404: "No such channel."},
    ("GET", "/api/v1/notifications/vapid"): {404: "Web Push is not configured here."},
    ("DELETE", "/api/v1/devices/{device_id}"): {404: "No such device."},
}
"""Statuses particular to one route, beyond the generic ones."""

LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, str, str]]] = {
    ("POST", "/api/v1/goals", "202"): {
        "GetRun": ("GET", "/api/v1/runs/{run_id}", "run_id", "$response.body#/run_id"),
        "CancelRun": ("POST", "/api/v1/runs/{run_id}/cancel", "run_id", "$response.body#/run_id"),
    },
    ("POST", "/api/v1/keys", "201"): {
        "RotateKey": ("POST", "/api/v1/keys/{key_id}/rotate", "key_id", "$response.body#/key_id"),
        "RevokeKey": ("POST", "/api/v1/keys/{key_id}/revoke", "key_id", "$response.body#/key_id"),
    },
}
"""OpenAPI links: where an answer's ids lead (also what the stateful contract test follows)."""

RATE_HEADERS = {
    name: {"description": text, "schema": {"type": "string", "pattern": "^[0-9]+$"}}
    for name, text in (
        ("RateLimit-Limit", "Requests allowed per window."),
        ("RateLimit-Remaining", "Requests left in the window."),
        ("RateLimit-Reset", "Seconds until a request is allowed again."),
        ("Retry-After", "Seconds to wait."),
    )
}


def install(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the document described above (built once)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def build(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document with problem details, every status and security."""
    doc = get_openapi(
        title=app.title,
        version=app.version,
        summary=app.summary,
        description=app.description,
        routes=app.routes,
    )
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    problem = ProblemDetails.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["ProblemDetails"] = problem
    components["securitySchemes"] = SECURITY_SCHEMES
    for route in routing.iter_route_contexts(app.routes):  # routers included, flattened
        if route.path_format in doc["paths"] and getattr(route, "include_in_schema", False):
            for method in route.methods or ():
                _document(doc["paths"][route.path_format][method.lower()], route, method)
    _link(doc["paths"])
    _only_event_streams(doc["paths"])
    return doc


def _only_event_streams(paths: dict[str, Any]) -> None:
    # A route answering Server-Sent Events documents that alone: FastAPI adds JSON to
    # every 200 it does not know better about.
    for operations in paths.values():
        for operation in operations.values():
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            if "text/event-stream" in content:
                content.pop("application/json", None)


def _link(paths: dict[str, Any]) -> None:
    for (method, path, status), links in LINKS.items():
        answer = paths[path][method.lower()]["responses"][status]
        answer["links"] = {
            name: {
                "operationId": paths[to_path][to_method.lower()]["operationId"],
                "parameters": {param: source},
            }
            for name, (to_method, to_path, param, source) in links.items()
        }


def _document(op: dict[str, Any], route: Any, method: str) -> None:
    responses: dict[str, Any] = op["responses"]
    # Any request may be too large or repeat a query parameter (api.edge).
    statuses = {413: STATUS_TEXT[413], 422: STATUS_TEXT[422]}
    if op.get("requestBody"):
        statuses[400] = "The body cannot be parsed as JSON."
    scope = required_scope(route.dependant)
    if scope is not None:
        op["security"] = [{"bearerAuth": []}, {"apiKeyHeader": []}]
        op["description"] = f"{op.get('description', '')}\n\nNeeds the scope `{scope}`.".strip()
        statuses.update({s: STATUS_TEXT[s] for s in (401, 403, 429, 503)})
    statuses.update(ROUTE_STATUSES.get((method, route.path_format), {}))
    for status, text in sorted(statuses.items()):
        answer: dict[str, Any] = {
            "description": text,
            "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
        }
        if status == 429:
            answer["headers"] = RATE_HEADERS
        responses[str(status)] = answer


def required_scope(dependant: Dependant) -> str | None:
    """The scope a route's ``require(...)`` guard demands, if it has one."""
    for dep in _walk(dependant):
        scope: str | None = getattr(dep.call, "required_scope", None)
        if scope is not None:
            return scope
    return None


def _walk(dependant: Dependant) -> Iterator[Dependant]:
    for dep in dependant.dependencies:
        yield dep
        yield from _walk(dep)
