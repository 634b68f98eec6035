"""Envelope and codec round trips, and the byte format a foreign consumer relies on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader

from domain.events import EVENT_TYPES
from omnihub import REPO_ROOT
from streams.codec import DecodeError, EventCodec
from streams.schema_registry import SchemaRegistry
from tests.factories import all_events, goal_received

SCHEMAS = REPO_ROOT / "schemas"


@pytest.fixture(scope="module")
def codec() -> EventCodec:
    return EventCodec(SchemaRegistry.from_dir(SCHEMAS))


def test_samples_cover_every_event_type() -> None:
    assert {e.EVENT_TYPE for e in all_events()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", all_events(), ids=lambda e: e.EVENT_TYPE)
def test_round_trip_is_lossless(codec: EventCodec, event) -> None:  # type: ignore[no-untyped-def]
    assert codec.decode(codec.encode(event)) == event


@pytest.mark.parametrize("event", all_events(), ids=lambda e: e.EVENT_TYPE)
def test_bytes_decode_with_the_avsc_file_alone(codec: EventCodec, event) -> None:  # type: ignore[no-untyped-def]
    data = codec.encode(event)
    assert data[:2] == b"\xc3\x01"
    schema = json.loads((SCHEMAS / f"{event.EVENT_TYPE}.v1.avsc").read_text())
    record = schemaless_reader(io.BytesIO(data[10:]), parse_schema(schema), None)
    assert isinstance(record, dict)
    assert record["envelope"]["event_id"] == event.envelope.event_id
    assert record["envelope"]["occurred_at"] == event.envelope.occurred_at


def test_fingerprint_is_crc64_avro_little_endian(codec: EventCodec) -> None:
    schema = codec.registry.latest("goal_received")
    assert codec.encode(goal_received())[2:10] == schema.fingerprint
    # The Avro spec's test vector: the fingerprint of "null" is 0x63dd24e7cc258f8a.
    from streams.schema_registry import fingerprint_of

    assert fingerprint_of("null") == (0x63DD24E7CC258F8A).to_bytes(8, "little")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "bad_header"),
        (b'{"goal": 1}', "bad_header"),
        (b"\xc3\x01" + b"\x00" * 8 + b"xx", "unknown_schema"),
    ],
)
def test_garbage_is_a_decode_error_with_a_reason(
    codec: EventCodec, data: bytes, reason: str
) -> None:
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert info.value.reason == reason


def test_truncated_body_is_a_decode_error(codec: EventCodec) -> None:
    data = codec.encode(goal_received())
    with pytest.raises(DecodeError) as info:
        codec.decode(data[:-5])
    assert info.value.reason == "corrupt_body"


def test_event_ids_are_deterministic() -> None:
    a, b = all_events("run-x"), all_events("run-x")
    assert [e.envelope.event_id for e in a] == [e.envelope.event_id for e in b]
    assert len({e.envelope.event_id for e in a}) == len(a)
    assert all_events("run-y")[3].envelope.event_id != a[3].envelope.event_id


def test_golden_v1_bytes_still_decode(codec: EventCodec) -> None:
    """Bytes written by v1 of every schema, checked in: each later version must read them."""
    golden = json.loads((Path(__file__).parent / "golden_v1.json").read_text())
    assert set(golden) == set(EVENT_TYPES)
    for event_type, hexdata in golden.items():
        event = codec.decode(bytes.fromhex(hexdata))
        assert event_type == event.EVENT_TYPE
        assert event.envelope.tenant_id == "acme"
