"""The API's access log: one JSON line per request with the key's prefix, never the key;
and the keys' last use, written at most once a minute per key, shown by ``keys list``."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from api.security.last_used import LastUsed, last_used_key, last_uses
from apps.commands.keys import LIST_HEADER, key_table
from omnihub.logs import JsonFormatter
from projections.keys import StoredKey
from tests.unit import test_gateway_guard
from tests.unit.test_api_goals import FakeRedis

gateway = test_gateway_guard.gateway  # the fixture: real app, fake log and limiter


@pytest.fixture
def access_lines() -> Iterator[io.StringIO]:
    """The ``omnihub.access`` logger at INFO, formatted as the processes format it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("omnihub.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield out
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)


async def request(app: Any, method: str, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        json_body = {"goal": "Book flight to Paris"} if method == "POST" else None
        return await client.request(method, path, headers=headers, json=json_body)


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_a_request_with_a_key_logs_its_prefix_and_never_the_secret(
    gateway: Any, access_lines: io.StringIO
) -> None:
    app, _, keys = gateway
    key = keys["writer"]
    r = await request(app, "POST", "/api/v1/goals", authorization=f"Bearer {key}")
    assert r.status_code == 202
    [line] = lines(access_lines)
    prefix, secret = key[:12], key[13:]  # omh_<8 chars>_<secret, may hold "_">
    assert line["key_prefix"] == prefix and prefix.startswith("omh_") and len(prefix) == 12
    assert secret not in access_lines.getvalue() and key not in access_lines.getvalue()
    assert (line["method"], line["path"], line["status"], line["tenant_id"]) == (
        "POST",
        "/api/v1/goals",
        202,
        "acme",
    )
    assert line["logger"] == "omnihub.access" and line["duration_ms"] >= 0
    assert line["request_id"] == r.headers["x-request-id"]


async def test_a_refused_key_logs_its_prefix_the_route_template_and_a_given_request_id(
    gateway: Any, access_lines: io.StringIO
) -> None:
    app, _, keys = gateway
    forged = keys["reader"][:-6] + "AAAAAA"  # the right prefix, a wrong secret
    r = await request(
        app, "GET", "/api/v1/runs/r-123", **{"x-api-key": forged, "x-request-id": "req-42"}
    )
    assert r.status_code == 401 and r.headers["x-request-id"] == "req-42"
    [line] = lines(access_lines)
    assert line["key_prefix"] == forged[:12] and line["tenant_id"] is None
    assert (line["path"], line["status"], line["request_id"]) == (
        "/api/v1/runs/{run_id}",
        401,
        "req-42",
    )
    assert forged[13:] not in access_lines.getvalue()


async def test_no_key_no_prefix_and_an_unsafe_request_id_is_replaced(
    gateway: Any, access_lines: io.StringIO
) -> None:
    app, _, _ = gateway
    r = await request(app, "GET", "/api/v1/nowhere", **{"x-request-id": "a b<>" * 30})
    [line] = lines(access_lines)
    assert (line["key_prefix"], line["path"], line["status"]) == (None, "unmatched", 404)
    assert line["request_id"] == r.headers["x-request-id"]
    assert len(line["request_id"]) == 32


async def test_an_authenticated_request_records_the_keys_last_use(gateway: Any) -> None:
    app, _, keys = gateway
    r = await request(app, "POST", "/api/v1/goals", authorization=f"Bearer {keys['writer']}")
    assert r.status_code == 202
    sec = app.state.omnihub.security
    await sec.last_used.drain()
    written = app.state.omnihub.redis.hashes[last_used_key("omnihub")]
    prefix = keys["writer"].split("_")[1]
    assert list(written) == [f"key-{prefix}"]
    at = datetime.fromisoformat(written[f"key-{prefix}"])
    assert datetime.now(UTC) - at < timedelta(seconds=10)


async def test_last_use_is_written_at_most_once_a_minute_per_key() -> None:
    redis, now = FakeRedis(), [1000.0]
    used = LastUsed(redis, "p", every_s=60, clock=lambda: now[0])  # type: ignore[arg-type]
    writes: list[str] = []

    async def hset(name: str, key: str, value: str) -> int:
        writes.append(key)
        return 1

    redis.hset = hset  # type: ignore[method-assign]
    for _ in range(100):
        used.touch("k1")
    used.touch("k2")
    now[0] += 59
    used.touch("k1")
    await used.drain()
    assert writes == ["k1", "k2"]
    now[0] += 2
    used.touch("k1")
    await used.drain()
    assert writes == ["k1", "k2", "k1"]


class HashOnly:
    def __init__(self, values: dict[str, bytes]) -> None:
        self.values = values

    async def hmget(self, name: str, keys: list[str]) -> list[bytes | None]:
        assert name == last_used_key("p")
        return [self.values.get(k) for k in keys]


def stored(key_id: str, prefix: str, **kw: Any) -> StoredKey:
    base: dict[str, Any] = {
        "key_id": key_id, "tenant_id": "acme", "prefix": prefix, "key_hash": "h",
        "scopes": ("admin",), "name": "ci", "created_at": datetime.now(UTC),
        "created_by": "user:ops", "expires_at": None, "revoked_at": None, "rotated_to": None,
    }  # fmt: skip
    return StoredKey(**{**base, **kw})


async def test_keys_list_has_a_header_and_a_last_used_column() -> None:
    at = datetime(2026, 12, 1, 17, 5, 30, tzinfo=UTC)
    used = await last_uses(HashOnly({"k1": at.isoformat().encode()}), "p", ["k1", "k2"])
    assert used == {"k1": at}
    table = key_table(
        [stored("k1", "abcd1234"), stored("k2", "zzzz9999", revoked_at=at, name="old")], used
    )
    assert table[0].split() == list(LIST_HEADER)
    assert table[1].split() == [
        "k1",
        "omh_abcd1234_…",
        "admin",
        "active",
        "2026-12-01",
        "17:05Z",
        "ci",
    ]
    assert table[2].split() == ["k2", "omh_zzzz9999_…", "admin", "revoked", "never", "old"]
    column = table[0].index("LAST_USED")
    assert table[1][column:].startswith("2026-12-01 17:05Z") and table[2][column:].startswith(
        "never"
    )


def test_keys_list_says_unknown_when_the_last_uses_cannot_be_read() -> None:
    soon = datetime(2027, 1, 2, 3, 4, tzinfo=UTC)
    table = key_table([stored("k1", "abcd1234", expires_at=soon)], None)
    assert table[1].split()[3:7] == ["expires", "2027-01-02", "03:04Z", "unknown"]
