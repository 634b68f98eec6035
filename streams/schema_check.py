"""``omnihub schemas check``: the contract folder is valid, frozen where released,
and every version is fully compatible with the one before it.

Released versions are frozen: ``schemas/released.json`` holds the fingerprint of each
released file. A released file that changes fails the check (add ``<type>.v<N+1>.avsc``
instead); a new file must be compatible with its predecessor, then ``omnihub schemas
release`` records it.
"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer

from streams.schema_compat import Incompatibility, can_read
from streams.schema_registry import EventSchema, SchemaError, SchemaRegistry

LOCK_FILE = "released.json"


def sample_datum(schema: Any, names: dict[str, Any] | None = None, namespace: str = "") -> Any:
    """A record that exercises every field of ``schema`` (non-null union branches first)."""
    names = {} if names is None else names
    if isinstance(schema, list):
        branch = next((b for b in schema if b != "null"), "null")
        return sample_datum(branch, names, namespace)
    if isinstance(schema, str):
        simple = {
            "null": None,
            "boolean": True,
            "int": 7,
            "long": 7,
            "float": 1.5,
            "double": 2.5,
            "bytes": b"x",
            "string": "sample",
        }
        return simple[schema] if schema in simple else sample_datum(names[schema], names)
    kind = schema["type"]
    if kind in ("record", "error"):
        ns = schema.get("namespace", namespace)
        names[schema["name"]] = names[f"{ns}.{schema['name']}".lstrip(".")] = schema
        return {f["name"]: sample_datum(f["type"], names, ns) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "fixed":
        return b"\0" * schema["size"]
    if kind == "array":
        return [sample_datum(schema["items"], names, namespace)]
    if kind == "map":
        return {"k": sample_datum(schema["values"], names, namespace)}
    return sample_datum(kind, names, namespace)


def bytes_problem(reader: Any, writer: Any) -> str | None:
    """Encode a sample with ``writer``, decode with ``reader``; the error, if any."""
    try:
        w, r = parse_schema(writer, _write_hint=False), parse_schema(reader, _write_hint=False)
        buf = io.BytesIO()
        schemaless_writer(buf, w, sample_datum(writer))
        buf.seek(0)
        schemaless_reader(buf, w, r)
    except Exception as exc:  # fastavro raises many kinds; each is a failure to report
        return f"{type(exc).__name__}: {exc}"
    return None


def compatibility_problems(old: EventSchema, new: EventSchema) -> list[str]:
    """Every way ``new`` breaks full compatibility with ``old``, naming the field."""
    problems: list[str] = []
    directions = (
        ("backward", new, old, f"{new.path.name} cannot read data written with {old.path.name}"),
        ("forward", old, new, f"{old.path.name} cannot read data written with {new.path.name}"),
    )
    for label, reader, writer, what in directions:
        static: list[Incompatibility] = can_read(reader.raw, writer.raw)
        problems += [f"{label}: {what}: {p}" for p in static]
        if not static and (err := bytes_problem(reader.raw, writer.raw)):
            problems.append(f"{label}: {what}: decoding sample bytes failed: {err}")
    return problems


def check_folder(folder: Path) -> list[str]:
    """All problems with the contract in ``folder``; empty means it passes."""
    try:
        registry = SchemaRegistry.from_dir(folder)
    except SchemaError as exc:
        return [str(exc)]
    problems: list[str] = []
    for event_type in registry.event_types:
        versions = registry.versions(event_type)
        for old, new in itertools.pairwise(versions):
            problems += compatibility_problems(old, new)
    released = _read_lock(folder)
    for schema in registry.all():
        frozen = released.get(schema.path.name)
        if frozen and frozen != schema.fingerprint.hex():
            problems.append(
                f"{schema.path.name} was released and has changed; released schemas are "
                f"frozen: restore it and add {schema.event_type}.v{schema.version + 1}.avsc"
            )
        elif frozen is None:
            problems.append(
                f"{schema.path.name} is not released yet: run `omnihub schemas release`"
            )
    for name in sorted(set(released) - {s.path.name for s in registry.all()}):
        problems.append(f"{name} was released and is gone; old messages need it to decode")
    return problems


def release(folder: Path) -> list[str]:
    """Record unreleased files in the lock once the folder passes; the files recorded."""
    problems = [p for p in check_folder(folder) if "is not released yet" not in p]
    if problems:
        raise SchemaError("\n".join(problems))
    released = _read_lock(folder)
    added = []
    for schema in SchemaRegistry.from_dir(folder).all():
        if schema.path.name not in released:
            released[schema.path.name] = schema.fingerprint.hex()
            added.append(schema.path.name)
    (folder / LOCK_FILE).write_text(json.dumps(dict(sorted(released.items())), indent=2) + "\n")
    return added


def _read_lock(folder: Path) -> dict[str, str]:
    path = folder / LOCK_FILE
    return dict(json.loads(path.read_text())) if path.exists() else {}
