"""The Python types and the .avsc files say the same thing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from domain.events import EVENT_TYPES, Envelope
from omnihub import REPO_ROOT
from streams.schema_check import check_folder
from streams.schema_registry import SchemaRegistry

SCHEMAS = REPO_ROOT / "schemas"
REGISTRY = SchemaRegistry.from_dir(SCHEMAS)


def test_the_checked_in_contract_passes_the_check() -> None:
    assert check_folder(SCHEMAS) == []


def test_every_schema_has_a_python_type_and_back() -> None:
    assert set(REGISTRY.event_types) == set(EVENT_TYPES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_fields_match_in_name_and_order(event_type: str) -> None:
    cls = EVENT_TYPES[event_type]
    schema = REGISTRY.latest(event_type)
    assert schema.version == cls.SCHEMA_VERSION
    assert schema.raw["namespace"] == "dev.omnihub.events"
    assert [f["name"] for f in schema.raw["fields"]] == [f.name for f in dataclasses.fields(cls)]


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_event_embeds_the_shared_envelope(event_type: str) -> None:
    shared = json.loads((SCHEMAS / "envelope.avsc").read_text())
    envelope_field = REGISTRY.latest(event_type).raw["fields"][0]
    assert envelope_field["name"] == "envelope"
    assert envelope_field["type"] == shared
    assert [f["name"] for f in shared["fields"]] == [f.name for f in dataclasses.fields(Envelope)]
