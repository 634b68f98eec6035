"""The evolution guard accepts compatible changes and names the field of a breaking one."""

from __future__ import annotations

import copy
import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

from omnihub import REPO_ROOT
from streams.codec import EventCodec
from streams.schema_check import check_folder, release, sample_datum
from streams.schema_registry import SchemaRegistry

V1 = json.loads((REPO_ROOT / "schemas" / "goal_received.v1.avsc").read_text())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "schemas", tmp_path / "schemas")
    return tmp_path / "schemas"


def add_v2(folder: Path, change: Any) -> None:
    v2 = copy.deepcopy(V1)
    change(v2)
    (folder / "goal_received.v2.avsc").write_text(json.dumps(v2))


def test_adding_a_field_with_a_default_is_compatible_and_releasable(folder: Path) -> None:
    add_v2(folder, lambda s: s["fields"].append({"name": "priority", "type": "int", "default": 0}))
    assert check_folder(folder) == [
        "goal_received.v2.avsc is not released yet: run `omnihub schemas release`"
    ]
    assert release(folder) == ["goal_received.v2.avsc"]
    assert check_folder(folder) == []


def test_adding_a_field_without_default_is_rejected_naming_it(folder: Path) -> None:
    add_v2(folder, lambda s: s["fields"].append({"name": "priority", "type": "int"}))
    problems = check_folder(folder)
    assert any("backward" in p and "'GoalReceived.priority'" in p for p in problems), problems


def test_removing_a_field_without_default_is_rejected_naming_it(folder: Path) -> None:
    add_v2(folder, lambda s: s["fields"].pop(1))  # drops "goal", which has no default
    problems = check_folder(folder)
    assert any("forward" in p and "'GoalReceived.goal'" in p for p in problems), problems


def test_changing_a_nested_type_is_rejected_naming_the_path(folder: Path) -> None:
    def change(s: dict[str, Any]) -> None:
        s["fields"][0]["type"]["fields"][5]["type"] = "string"  # envelope.occurred_at

    add_v2(folder, change)
    problems = check_folder(folder)
    for direction in ("backward", "forward"):
        assert any(direction in p and "envelope.occurred_at'" in p for p in problems), problems


def test_promotion_is_one_way(folder: Path) -> None:
    def widen(s: dict[str, Any]) -> None:
        s["fields"].append({"name": "n", "type": "int", "default": 0})

    add_v2(folder, widen)
    release(folder)
    v3 = json.loads((folder / "goal_received.v2.avsc").read_text())
    v3["fields"][-1]["type"] = "long"  # long data cannot be read as int by v2 readers
    (folder / "goal_received.v3.avsc").write_text(json.dumps(v3))
    problems = check_folder(folder)
    assert any("forward" in p and "'GoalReceived.n'" in p for p in problems), problems


def test_editing_a_released_schema_is_rejected(folder: Path) -> None:
    edited = copy.deepcopy(V1)
    edited["fields"].append({"name": "x", "type": "int", "default": 0})
    (folder / "goal_received.v1.avsc").write_text(json.dumps(edited))
    problems = check_folder(folder)
    assert any("goal_received.v1.avsc was released and has changed" in p for p in problems)


def test_a_missing_version_is_rejected(folder: Path) -> None:
    add_v2(folder, lambda s: s["fields"].append({"name": "x", "type": "int", "default": 0}))
    (folder / "goal_received.v2.avsc").rename(folder / "goal_received.v3.avsc")
    assert any("versions [2] are missing" in p for p in check_folder(folder))


def test_old_bytes_read_with_new_schema_and_new_bytes_with_old(folder: Path) -> None:
    add_v2(folder, lambda s: s["fields"].append({"name": "priority", "type": "int", "default": 5}))
    new_codec = EventCodec(SchemaRegistry.from_dir(folder), types={})
    old = SchemaRegistry.from_dir(REPO_ROOT / "schemas").latest("goal_received")
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + old.fingerprint)
    schemaless_writer(buf, old.parsed, sample_datum(V1))
    _, record = new_codec.decode_record(buf.getvalue())
    assert record["priority"] == 5  # the reader's default fills what v1 never wrote
    assert record["goal"] == "sample"

    v2 = json.loads((folder / "goal_received.v2.avsc").read_text())
    new_bytes = io.BytesIO()
    schemaless_writer(new_bytes, parse_schema(v2), {**sample_datum(v2), "priority": 9})
    new_bytes.seek(0)
    read_back = schemaless_reader(new_bytes, parse_schema(v2), old.parsed)
    assert isinstance(read_back, dict)
    assert "priority" not in read_back
    assert read_back["goal"] == "sample"
