"""The API's contract at the HTTP layer (issue 16), with the fakes of the gateway tests:
text Postgres cannot hold is a 422 naming the field, errors are documented as problem
details, the headers every answer needs, OPTIONS and 405 name the right methods, a busy
429 reports the rate, the slot is free before the answer leaves, a repeated query
parameter is refused."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from redis.crc import key_slot
from starlette.types import Message, Receive, Scope, Send

from api.routes.runs import parse_cursor
from api.security.limits import RedisLimiter
from tests.unit import test_gateway_guard

gateway = test_gateway_guard.gateway  # the fixture: real app, fake log and limiter

NUL_GOAL = "say hi\u0000 then save the result"


async def call(
    app: Any, method: str, path: str, key: str | None = None, **kw: Any
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if "json" in kw:  # as JSON escapes, so unpaired surrogates can be sent
        kw["content"] = json.dumps(kw.pop("json"))
        headers["Content-Type"] = "application/json"
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, headers=headers, **kw)


def is_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert isinstance(body["detail"], str)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"goal": NUL_GOAL}, "body.goal"),
        ({"goal": "a\ud800b"}, "body.goal"),
        ({"goal": "ok", "context": {"k": "v\u0000"}}, "body.context.k"),
        ({"goal": "ok", "context": {"k\u0000": "v"}}, "body.context.k\\u0000"),
    ],
)
async def test_text_postgres_cannot_hold_is_a_422_naming_the_field(
    gateway: Any, body: dict[str, Any], field: str
) -> None:
    app, _, keys = gateway
    r = await call(app, "POST", "/api/v1/goals", keys["writer"], json=body)
    problem = is_problem(r, 422)
    assert problem["detail"].startswith(field)
    assert any(w in problem["detail"] for w in ("U+0000", "surrogate", "unicode"))
    assert app.state.omnihub.appender.events == []  # nothing reached the log


async def test_a_batch_item_with_nul_is_refused_alone(gateway: Any) -> None:
    app, _, keys = gateway
    body = {"goals": [{"goal": NUL_GOAL}, {"goal": "fine"}]}
    r = await call(app, "POST", "/api/v1/goals:batch", keys["writer"], json=body)
    items = r.json()["items"]
    assert [i["status"] for i in items] == [422, 202]
    assert items[0]["problem"]["detail"].startswith("goal: ")


def test_the_document_has_no_http_validation_error_and_every_error_is_a_problem(
    gateway: Any,
) -> None:
    app, _, _ = gateway
    doc = app.openapi()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["ProblemDetails"]["properties"]["detail"]["type"] == "string"
    assert set(doc["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyHeader"}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert {"413", "422"} <= codes, (method, path)
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")) and path != "/health":
                    assert list(answer["content"]) == ["application/problem+json"], (path, code)
            if path.startswith("/api/"):
                assert op["security"] and {"401", "403", "429", "503"} <= codes, (method, path)
    cancel = doc["paths"]["/api/v1/runs/{run_id}/cancel"]["post"]
    assert {"404", "409"} <= set(cancel["responses"])
    assert "reason" in schemas["CancelRequest"]["required"]
    assert "required" in schemas["CancelRequest"]["properties"]["reason"]["description"].lower()
    assert {"202", "201"} <= set(doc["paths"]["/api/v1/keys"]["post"]["responses"])


async def test_every_answer_says_nosniff(gateway: Any) -> None:
    app, _, keys = gateway
    answers = [
        await call(app, "POST", "/api/v1/goals", keys["writer"], json={"goal": "hi"}),
        await call(app, "POST", "/api/v1/goals", json={"goal": "hi"}),  # 401
        await call(app, "GET", "/nowhere"),  # 404
        await call(app, "POST", "/api/v1/goals", keys["writer"], content=b"x" * 10_000_000),
        await call(app, "OPTIONS", "/api/v1/goals"),
        await call(app, "GET", "/docs"),
    ]
    assert [a.status_code for a in answers] == [202, 401, 404, 413, 204, 200]
    assert all(a.headers["x-content-type-options"] == "nosniff" for a in answers)


async def test_docs_load_swagger_ui_from_the_package(gateway: Any) -> None:
    app, _, _ = gateway
    for page in ("/docs", "/redoc"):
        html = (await call(app, "GET", page)).text
        assert "http://" not in html and "https://" not in html, html
        local = [
            part.split('"')[0] for part in html.split('="')[1:] if part.startswith("/docs-assets/")
        ]
        assert local, html
        for asset in local:
            r = await call(app, "GET", asset)
            assert r.status_code == 200 and len(r.content) > 1000, asset
    bundle = (await call(app, "GET", "/docs-assets/swagger-ui-bundle.js")).text
    assert "SwaggerUIBundle" in bundle


async def test_options_and_405_name_every_method_of_the_path(gateway: Any) -> None:
    app, _, _ = gateway
    r = await call(app, "OPTIONS", "/api/v1/approvals/ap-1")
    assert r.status_code == 204 and r.headers["allow"] == "GET, OPTIONS, POST"
    r = await call(app, "DELETE", "/api/v1/approvals/ap-1")
    is_problem(r, 405)
    assert r.headers["allow"] == "GET, OPTIONS, POST"
    assert (await call(app, "OPTIONS", "/api/v1/goals")).headers["allow"] == "OPTIONS, POST"
    is_problem(await call(app, "OPTIONS", "/api/v1/nothing-here"), 404)


async def test_a_concurrency_429_carries_the_rate_headers(gateway: Any) -> None:
    app, limiter, keys = gateway
    limiter.slots = False
    r = await call(app, "POST", "/api/v1/goals", keys["writer"], json={"goal": "hi"})
    assert is_problem(r, 429)["type"].endswith("too-many-concurrent-requests")
    assert (r.headers["ratelimit-limit"], r.headers["ratelimit-remaining"]) == ("60", "7")
    assert r.headers["ratelimit-reset"] == "42" and r.headers["retry-after"] == "1"


async def test_the_slot_is_released_before_the_answer_is_sent(gateway: Any) -> None:
    app, limiter, keys = gateway
    held_at_start: list[int] = []

    async def watching(scope: Scope, receive: Receive, send: Send) -> None:
        async def spy(message: Message) -> None:
            if message["type"] == "http.response.start":
                held_at_start.append(len(limiter.asked) - len(limiter.released))
            await send(message)

        await app(scope, receive, spy)

    for _ in range(3):
        r = await call(watching, "POST", "/api/v1/goals", keys["writer"], json={"goal": "hi"})
        assert r.status_code == 202
    assert held_at_start == [0, 0, 0]


async def test_a_repeated_query_parameter_is_a_422_naming_it(gateway: Any) -> None:
    app, _, keys = gateway
    r = await call(
        app,
        "GET",
        "/api/v1/runs?until=2026-01-01T00:00:00Z&until=2027-01-01T00:00:00Z",
        keys["reader"],
    )
    body = is_problem(r, 422)
    assert body["detail"].startswith("query.until: ")


def test_an_empty_cursor_is_no_cursor() -> None:
    assert parse_cursor("") is None and parse_cursor(None) is None


def test_the_limiter_keys_share_one_cluster_slot() -> None:
    for key_id, tenant in (("key-1", "acme"), ("a" * 40, "t" * 64), ("kx", "-")):
        keys = RedisLimiter.keys_of(key_id, tenant)
        assert len(set(keys)) == 4 and all(key_id in k for k in keys[:2])
        assert {key_slot(k.encode()) for k in keys} == {key_slot(keys[0].encode())}
        assert all("{" + tenant + "}" in k for k in keys)


async def test_an_unexpected_error_is_a_500_problem_with_nosniff(gateway: Any) -> None:
    app, _, _ = gateway

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        r = await client.get("/boom")
    assert is_problem(r, 500)["type"].endswith("internal-error")
    assert r.headers["x-content-type-options"] == "nosniff"
