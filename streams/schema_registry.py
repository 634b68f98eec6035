"""Loads the ``.avsc`` contract from ``schemas/`` and indexes it by fingerprint.

A schema file is named ``<event_type>.v<N>.avsc``. Every version stays in the folder
forever: old messages name their writer schema by fingerprint, and a reader must
find it to decode them. The newest version of an event type is the one written.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

SCHEMA_FILE = re.compile(r"^(?P<event_type>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.avsc$")


class SchemaError(Exception):
    """The schema folder is not a valid contract."""


@dataclass(frozen=True)
class EventSchema:
    """One version of one event's schema."""

    event_type: str
    version: int
    path: Path
    raw: Mapping[str, Any]
    parsed: Any
    fingerprint: bytes  # CRC-64-AVRO of the parsing canonical form, little-endian

    @property
    def full_name(self) -> str:
        return f"{self.raw.get('namespace', '')}.{self.raw['name']}".lstrip(".")


def fingerprint_of(raw: Any) -> bytes:
    """The 8-byte CRC-64-AVRO fingerprint used by Avro single-object encoding."""
    canonical = to_parsing_canonical_form(parse_schema(raw, _write_hint=False))
    return bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO"))


def load_schema_file(path: Path) -> EventSchema:
    """Parse one ``<event_type>.v<N>.avsc`` file."""
    match = SCHEMA_FILE.match(path.name)
    if not match:
        raise SchemaError(f"{path.name}: schema files are named <event_type>.v<N>.avsc")
    try:
        raw = json.loads(path.read_text())
        # It may edit its input: a copy. With the parsed marker (the default write hint)
        # fastavro trusts it on every encode and decode; without, it parsed the whole
        # schema again per record, most of a decode's time.
        parsed = parse_schema(copy.deepcopy(raw))
    except (ValueError, TypeError, KeyError) as exc:  # fastavro raises several kinds
        raise SchemaError(f"{path.name}: not a valid Avro schema: {exc}") from exc
    return EventSchema(
        event_type=match["event_type"],
        version=int(match["version"]),
        path=path,
        raw=raw,
        parsed=parsed,
        fingerprint=fingerprint_of(raw),
    )


class SchemaRegistry:
    """Every event schema version in a folder, by event type and by fingerprint."""

    def __init__(self, schemas: Iterable[EventSchema]) -> None:
        self._versions: dict[str, dict[int, EventSchema]] = {}
        self._by_fingerprint: dict[bytes, EventSchema] = {}
        for schema in schemas:
            self._versions.setdefault(schema.event_type, {})[schema.version] = schema
            clash = self._by_fingerprint.setdefault(schema.fingerprint, schema)
            if clash is not schema:
                raise SchemaError(f"{schema.path.name} and {clash.path.name} are the same schema")
        for event_type, versions in self._versions.items():
            missing = set(range(1, max(versions) + 1)) - set(versions)
            if missing:
                raise SchemaError(f"{event_type}: versions {sorted(missing)} are missing")

    @classmethod
    def from_dir(cls, folder: Path) -> SchemaRegistry:
        """Load every ``*.v<N>.avsc`` file in ``folder``."""
        return cls(load_schema_file(p) for p in sorted(folder.glob("*.v*.avsc")))

    @property
    def event_types(self) -> list[str]:
        return sorted(self._versions)

    def versions(self, event_type: str) -> list[EventSchema]:
        """All versions of an event type, oldest first."""
        return [v for _, v in sorted(self._versions.get(event_type, {}).items())]

    def latest(self, event_type: str) -> EventSchema:
        """The version new events of this type are written with."""
        versions = self._versions.get(event_type)
        if not versions:
            raise SchemaError(f"no schema for event type {event_type!r}")
        return versions[max(versions)]

    def by_fingerprint(self, fp: bytes) -> EventSchema | None:
        return self._by_fingerprint.get(fp)

    def all(self) -> list[EventSchema]:
        return [s for et in self.event_types for s in self.versions(et)]
