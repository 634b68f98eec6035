"""The API's contract against the real API, projector, Kafka and Postgres of the test stack.

- What the API accepts, every projection holds: generated text (Hypothesis, NUL and
  unpaired surrogates included) is either refused with a 422 naming the field, or
  accepted and then read back exactly from the read model, its timeline included.
  Text a tool reports (not checked by the API) is projected escaped, never dropped.
- Schemathesis fuzzes every operation of the OpenAPI document and checks each answer:
  no 5xx, a documented status, the documented content type and schema. Requests rotate
  over several keys so the per-key rate limit does not turn the routes into 429s.

Everything runs on the test stack (tests/conftest.py), in its own topic prefix, schema
and Redis database (tests/e2e/gateway_stack.py): never the dev stack.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from domain import ids
from domain.events import StepFailed
from domain.goal_text import is_blank
from domain.storable import unstorable
from infra.launch import omnihub_argv, running, running_api
from infra.stack import StackConfig
from tests.e2e.gateway_stack import cli_key, gateway_env, running_processor
from tests.e2e.test_projection_api import settings_of
from tests.integration.test_projection_store import append, story

TENANT = "contract"
KEYS = 30  # keys rotated over; the tenant is enterprise: 1,200 a minute each, 6,000 in all
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
ANY_TEXT = st.text(st.characters(exclude_categories=()), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def env(stack: StackConfig) -> dict[str, str]:
    return gateway_env(
        stack,
        OMNIHUB_PROJECTIONS_REDIS_PREFIX=f"ct{uuid.uuid4().hex[:8]}",
        OMNIHUB_KILLSWITCH_CACHE_TTL_S="0",
        OMNIHUB_TIER_CACHE_TTL_S="0",
        OMNIHUB_KEY_PROJECTION_WAIT_S="5",
    )


@pytest.fixture(scope="module")
def api(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs: Path = tmp_path_factory.mktemp("contract")
    with (
        running(omnihub_argv("projector", "run"), env, logs / "projector.log", grace_s=30),
        running_processor(env, logs),
        running_api(env, logs) as url,
    ):
        yield url


@pytest.fixture(scope="module")
def keys(api: str, env: dict[str, str]) -> Iterator[str]:
    """An endless rotation over ``KEYS`` keys of one tenant holding every scope, on the
    enterprise tier (so its per-tenant rate and monthly goals are not what is tested)."""
    scopes = ["admin", "platform:killswitch", "platform:tiers"]
    first = cli_key(env, TENANT, ",".join(scopes)).key
    made = [first]
    with httpx.Client(base_url=api, timeout=30) as client:
        r = client.put(
            f"/api/v1/admin/tenants/{TENANT}/tier",
            json={"tier": "enterprise", "reason": "contract test"},
            headers={"Authorization": f"Bearer {first}"},
        )
        assert r.status_code == 200 and r.json()["applied"], r.text
        for _ in range(KEYS - 1):
            r = client.post(
                "/api/v1/keys",
                json={"scopes": scopes, "name": "contract"},
                headers={"Authorization": f"Bearer {first}"},
            )
            assert r.status_code == 201, r.text
            assert r.headers["cache-control"] == "no-store"  # the body holds a plaintext key
            made.append(r.json()["key"])
    return itertools.cycle(made)


def post_json(client: httpx.Client, path: str, key: str, body: Any) -> httpx.Response:
    """POST ``body`` as ASCII JSON: unpaired surrogates travel as ``\\udXXX`` escapes."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    return client.post(path, content=json.dumps(body), headers=headers)


def read_run(client: httpx.Client, keys: Iterator[str], run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        r = client.get(f"/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {next(keys)}"})
        if r.status_code == 200 and r.json()["timeline"]:
            body: dict[str, Any] = r.json()
            return body
        assert r.status_code == 404, r.text
        assert time.monotonic() < deadline, f"run {run_id} never reached the read model"
        time.sleep(0.3)


@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
@given(texts=st.lists(ANY_TEXT, min_size=4, max_size=8))
@example(texts=["say hi\u0000 then save the result", "lone \ud800 surrogate", "plain \u00e9"])
def test_every_goal_the_api_accepts_is_in_the_read_model_exactly(
    api: str, keys: Iterator[str], texts: list[str]
) -> None:
    with httpx.Client(base_url=api, timeout=30) as client:
        accepted: dict[str, dict[str, Any]] = {}
        for text in texts:
            body = {"goal": text, "context": {"note": text, text: "as a key"}}
            r = post_json(client, "/api/v1/goals", next(keys), body)
            if unstorable(text) is not None or is_blank(text):  # refused, naming the field
                assert r.status_code == 422, r.text
                assert r.headers["content-type"].startswith("application/problem+json")
                assert r.json()["detail"].startswith("body.goal")
                continue
            assert r.status_code == 202, r.text
            accepted[r.json()["run_id"]] = body
        for run_id, body in accepted.items():
            run = read_run(client, keys, run_id)
            assert run["goal"] == body["goal"]
            first = run["timeline"][0]
            assert first["event_type"] == "goal_received"
            assert first["payload"]["context"] == body["context"]


def test_text_a_tool_reports_is_projected_escaped_not_dropped(
    api: str, keys: Iterator[str], env: dict[str, str]
) -> None:
    run_id = f"run-{uuid.uuid4().hex[:8]}"
    events = story(run_id, TENANT, 0)[:4]
    env_failed = ids.envelope(
        StepFailed,
        run_id=run_id,
        tenant_id=TENANT,
        actor="saga",
        correlation_id=run_id,
        discriminator=("s1", "nul"),
    )
    events.append(
        StepFailed(env_failed, "s1", "http_call", 1, "Boom", "byte \x00 in reply", False, True)
    )
    asyncio.run(append(settings_of(env), events))
    with httpx.Client(base_url=api, timeout=30) as client:
        deadline = time.monotonic() + 60
        while len((run := read_run(client, keys, run_id))["timeline"]) < len(events):
            assert time.monotonic() < deadline, run
            time.sleep(0.2)
    failed = run["timeline"][-1]
    assert failed["event_type"] == "step_failed"
    assert failed["payload"]["error_message"] == "byte \\u0000 in reply"


def documented(api: str) -> Any:
    """The API's document, less the live stream: an SSE answer never ends, so each call
    would wait out its timeout (tests/e2e/test_stream.py covers it)."""
    return schemathesis.openapi.from_url(f"{api}/openapi.json").exclude(path="/api/v1/stream")


def test_every_answer_conforms_to_the_document(api: str, keys: Iterator[str]) -> None:
    # One Hypothesis run per operation and generation mode (schemathesis' lazy pytest
    # loader does not run under pytest 9), a bounded number of examples.
    schema = documented(api)
    statuses: Counter[tuple[str, int]] = Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 17
    for operation in operations:
        for mode, examples in ((GenerationMode.POSITIVE, 20), (GenerationMode.NEGATIVE, 8)):

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case: Any) -> None:
                response = case.call(headers={"Authorization": f"Bearer {next(keys)}"}, timeout=30)
                statuses[(case.operation.label, response.status_code)] += 1
                case.validate_response(response, checks=CHECKS)

            try:
                check()
            except Unsatisfiable:
                # Nothing to make invalid (no parameters, no body): positive cases only.
                assert mode is GenerationMode.NEGATIVE, operation.label
    for (label, status), n in sorted(statuses.items()):
        print(f"{label}: {status} x{n}")
    assert all(status != 429 for _, status in statuses), "the key rotation was not enough"


def test_linked_calls_conform_to_the_document(api: str, keys: Iterator[str]) -> None:
    # Stateful: follow the document's links (a new goal's run, a new key's rotation and
    # revocation) with the ids the API answered, so those routes see real ids, not 404s.
    schema = documented(api)
    machine = schema.as_state_machine()
    seen: Counter[tuple[str, int]] = Counter()
    failures: list[str] = []

    class Authorized(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": {"Authorization": f"Bearer {next(keys)}"}, "timeout": 30}

        def validate_response(self, response: Any, case: Any, *args: Any, **kw: Any) -> None:
            seen[(case.operation.label, response.status_code)] += 1
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as exc:  # kept here: a replay would not meet the same API
                failures.append(str(exc))

    sessions = 0
    while sum(seen.values()) < 150 and sessions < 6:
        sessions += 1
        try:
            Authorized.run(settings=STATEFUL)
        except FlakyStrategyDefinition:
            # The API's state changed what a scenario drew (as schemathesis' own runner
            # does, go on in a fresh session).
            continue
    assert not failures, "\n\n".join(failures[:3])
    for (label, status), n in sorted(seen.items()):
        print(f"stateful {label}: {status} x{n}")
    # A link was followed with a real id: a route that only answers 404 to made-up ids
    # answered 2xx.
    followed = {
        "POST /api/v1/keys/{key_id}/rotate",
        "POST /api/v1/keys/{key_id}/revoke",
        "POST /api/v1/runs/{run_id}/cancel",
        "GET /api/v1/runs/{run_id}",
    }
    assert any(label in followed and status < 300 for label, status in seen), seen


STATEFUL = settings(
    max_examples=30,
    stateful_step_count=5,
    deadline=None,
    database=None,
    phases=[Phase.generate],
    suppress_health_check=list(HealthCheck),
)
