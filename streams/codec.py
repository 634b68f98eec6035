"""Event bytes on the wire: Avro single-object encoding.

Every Kafka message value is::

    C3 01 | 8-byte CRC-64-AVRO fingerprint (little-endian) | Avro binary body

The fingerprint is that of the writer schema's parsing canonical form, so any
consumer that holds the ``.avsc`` files, in any language, can find the writer schema
and decode the body (reading with a newer schema of the same event resolves fields
by Avro's rules). The README's "Byte format" section documents it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from domain.events import EVENT_TYPES, Event
from streams.records import from_record, to_record
from streams.schema_registry import EventSchema, SchemaError, SchemaRegistry

MAGIC = b"\xc3\x01"
HEADER_LEN = len(MAGIC) + 8


class DecodeError(Exception):
    """These bytes are not an OmniHub event; ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class EventCodec:
    """Encodes events with their newest schema; decodes any version it has the schema of."""

    def __init__(
        self, registry: SchemaRegistry, types: Mapping[str, type[Event]] = EVENT_TYPES
    ) -> None:
        self._registry = registry
        self._types = dict(types)
        self._writers: dict[str, EventSchema] = {}
        for event_type, cls in self._types.items():
            latest = registry.latest(event_type)
            if latest.version != cls.SCHEMA_VERSION:
                raise SchemaError(
                    f"{cls.__name__}.SCHEMA_VERSION is {cls.SCHEMA_VERSION} but the newest "
                    f"schema is {latest.path.name}"
                )
            self._writers[event_type] = latest

    @property
    def registry(self) -> SchemaRegistry:
        return self._registry

    def encode(self, event: Event) -> bytes:
        """The single-object encoding of ``event``."""
        writer = self._writers[event.EVENT_TYPE]
        out = io.BytesIO()
        out.write(MAGIC)
        out.write(writer.fingerprint)
        schemaless_writer(out, writer.parsed, to_record(event))
        return out.getvalue()

    def decode_record(self, data: bytes) -> tuple[EventSchema, dict[str, Any]]:
        """The writer schema and the record, read with the newest schema of its type."""
        if len(data) < HEADER_LEN or data[:2] != MAGIC:
            raise DecodeError("bad_header", "not Avro single-object encoding (no C3 01 marker)")
        writer = self._registry.by_fingerprint(data[2:HEADER_LEN])
        if writer is None:
            raise DecodeError("unknown_schema", f"no schema has fingerprint {data[2:10].hex()}")
        reader = self._registry.latest(writer.event_type)
        # Resolution is only needed (and only paid for) when the writer is an older version.
        reader_schema = None if reader is writer else reader.parsed
        try:
            record = schemaless_reader(io.BytesIO(data[HEADER_LEN:]), writer.parsed, reader_schema)
        except Exception as exc:  # fastavro raises many kinds on corrupt input
            raise DecodeError("corrupt_body", f"{writer.path.name}: {exc!r}") from exc
        if not isinstance(record, dict):
            raise DecodeError("corrupt_body", f"{writer.path.name}: not a record")
        return writer, record

    def decode(self, data: bytes) -> Event:
        """The event in ``data``, as its Python type."""
        writer, record = self.decode_record(data)
        cls = self._types.get(writer.event_type)
        if cls is None:
            raise DecodeError("unknown_type", f"no Python type for {writer.event_type}")
        try:
            return from_record(cls, record)
        except (KeyError, TypeError, ValueError) as exc:
            raise DecodeError("bad_record", f"{writer.event_type}: {exc!r}") from exc
