"""Crypto-shredding, the pure part: marked fields, sealed values, erased reads."""

from __future__ import annotations

import json
import os

from domain.events import GoalReceived, PlanGenerated
from domain.privacy import (
    ERASED,
    erase_json,
    key_id_of,
    map_paths,
    open_all,
    open_text,
    personal_paths,
    seal_text,
    sealed_strings,
)
from omnihub import REPO_ROOT
from streams.schema_registry import SchemaRegistry, fingerprint_of
from tests.factories import all_events

SCHEMAS = REPO_ROOT / "schemas"


def test_marks_leave_fingerprints_as_released() -> None:
    released = json.loads((SCHEMAS / "released.json").read_text())
    for path in SCHEMAS.glob("*.avsc"):
        if path.name in released:
            assert fingerprint_of(json.loads(path.read_text())).hex() == released[path.name]


def test_schemas_declare_the_personal_fields() -> None:
    registry = SchemaRegistry.from_dir(SCHEMAS)
    paths = {t: personal_paths(registry.latest(t).raw) for t in registry.event_types}
    assert paths["goal_received"] == (("goal",), ("context",))
    assert ("steps", "*", "arguments_json") in paths["plan_generated"]
    assert paths["approval_granted"] == (("reason",),)
    assert paths["step_completed"] == (("result_json",),)
    assert paths["step_started"] == ()


def test_seal_open_and_erase() -> None:
    key = os.urandom(32)
    sealed = seal_text("k1", key, "Alice Example")
    assert "Alice" not in sealed and key_id_of(sealed) == "k1"
    assert open_text(sealed, key) == "Alice Example"
    assert open_text(sealed, None) == ERASED
    assert open_text(sealed, os.urandom(32)) == ERASED  # the wrong key opens nothing


def test_events_seal_and_open_at_every_depth() -> None:
    key = os.urandom(32)
    events = {e.EVENT_TYPE: e for e in all_events()}
    registry = SchemaRegistry.from_dir(SCHEMAS)
    for event_type in ("goal_received", "plan_generated"):
        event = events[event_type]
        paths = personal_paths(registry.latest(event_type).raw)
        sealed = map_paths(event, paths, lambda t: seal_text("k1", key, t))
        assert list(sealed_strings(sealed))
        assert open_all(sealed, lambda s: open_text(s, key)) == event
        erased = open_all(sealed, lambda s: open_text(s, None))
        if isinstance(erased, GoalReceived):
            assert erased.goal == ERASED and set(erased.context.values()) <= {ERASED}
        if isinstance(erased, PlanGenerated):
            assert {s.arguments_json for s in erased.steps} == {ERASED}


def test_erase_json_matches_a_replay_without_the_key() -> None:
    payload = {"goal": "Alice", "context": {"who": "Alice"}, "reason": "", "tool": "x"}
    names = frozenset({"goal", "context", "reason"})
    assert erase_json(payload, names) == {
        "goal": ERASED,
        "context": {"who": ERASED},
        "reason": "",  # empty values are never sealed
        "tool": "x",
    }
