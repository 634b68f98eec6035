"""Schema evolution guard: every new version must be fully compatible with the last.

Full compatibility means data written with the old schema reads with the new one
(backward) and data written with the new one reads with the old (forward). Each
direction is checked twice: statically, by Avro's resolution rules, so the message
names the field; and on bytes, by encoding a sample record with the writer schema
and decoding it with the reader schema through fastavro.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


@dataclass(frozen=True)
class Incompatibility:
    """One reason data written with ``writer`` cannot be read with ``reader``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"field '{self.field}': {self.message}"


class _Names:
    """Named types of one schema document, so references can be resolved."""

    def __init__(self, schema: Any, namespace: str = "") -> None:
        self.types: dict[str, Mapping[str, Any]] = {}
        self._collect(schema, namespace)

    def _collect(self, schema: Any, namespace: str) -> None:
        if isinstance(schema, list):
            for branch in schema:
                self._collect(branch, namespace)
        elif isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "enum", "fixed", "error"):
                ns = schema.get("namespace", namespace)
                self.types[_full(schema["name"], ns)] = schema
                self.types.setdefault(schema["name"], schema)
                for f in schema.get("fields", []):
                    self._collect(f["type"], ns)
            elif kind == "array":
                self._collect(schema["items"], namespace)
            elif kind == "map":
                self._collect(schema["values"], namespace)

    def resolve(self, schema: Any) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return self.types.get(schema, schema)
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            return schema["type"]  # a logical type resolves as its underlying type
        if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
            return schema["type"]
        return schema


def _full(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, str):
        return schema
    return str(schema["type"])


class _Resolver:
    """Avro's schema-resolution rules, collecting every incompatibility with its path."""

    def __init__(self, reader: Any, writer: Any) -> None:
        self.r_names, self.w_names = _Names(reader), _Names(writer)
        self.problems: list[Incompatibility] = []
        self._seen: set[tuple[int, int]] = set()

    def check(self, reader: Any, writer: Any, path: str) -> bool:
        reader, writer = self.r_names.resolve(reader), self.w_names.resolve(writer)
        rk, wk = _kind(reader), _kind(writer)
        if wk == "union":
            ok = True
            for branch in writer:
                ok &= self._branch(reader, branch, path)
            return ok
        if rk == "union":
            if any(self._quiet(r, writer) for r in reader):
                return True
            return self._fail(path, f"writer type {wk} matches no branch of the reader's union")
        if rk != wk and wk not in PROMOTIONS.get(rk, set()) and rk not in PROMOTIONS.get(wk, set()):
            return self._fail(path, f"type changed from {wk} to {rk}")
        if rk != wk and rk not in PROMOTIONS.get(wk, set()):
            return self._fail(path, f"{wk} cannot be promoted to {rk}")
        return self._complex(rk, reader, writer, path)

    def _branch(self, reader: Any, branch: Any, path: str) -> bool:
        if _kind(self.r_names.resolve(reader)) == "union":
            return self.check(reader, branch, path)
        if self._quiet(reader, branch):
            return True
        return self._fail(
            path,
            f"writer union branch {_kind(self.w_names.resolve(branch))} "
            f"cannot be read as {_kind(self.r_names.resolve(reader))}",
        )

    def _quiet(self, reader: Any, writer: Any) -> bool:
        before = len(self.problems)
        ok = self.check(reader, writer, "")
        del self.problems[before:]
        return ok

    def _complex(self, kind: str, reader: Any, writer: Any, path: str) -> bool:
        if kind == "array":
            return self.check(reader["items"], writer["items"], f"{path}[]")
        if kind == "map":
            return self.check(reader["values"], writer["values"], f"{path}{{}}")
        if kind == "enum":
            missing = set(writer["symbols"]) - set(reader["symbols"])
            if missing and "default" not in reader:
                return self._fail(path, f"enum symbols {sorted(missing)} unknown to the reader")
        if kind == "fixed" and reader["size"] != writer["size"]:
            return self._fail(path, "fixed size changed")
        if kind in ("record", "error"):
            return self._record(reader, writer, path)
        return True

    def _record(self, reader: Mapping[str, Any], writer: Mapping[str, Any], path: str) -> bool:
        key = (id(reader), id(writer))
        if key in self._seen:
            return True  # recursive types: already being checked
        self._seen.add(key)
        if reader["name"].split(".")[-1] != writer["name"].split(".")[-1] and writer[
            "name"
        ] not in reader.get("aliases", []):
            return self._fail(path or reader["name"], "record name changed")
        prefix = f"{path}." if path else f"{reader['name']}."
        w_fields = {f["name"]: f for f in writer["fields"]}
        ok = True
        for field in reader["fields"]:
            source = w_fields.get(field["name"]) or next(
                (w_fields[a] for a in field.get("aliases", []) if w_fields.get(a)), None
            )
            if source:
                ok &= self.check(field["type"], source["type"], prefix + field["name"])
            elif "default" not in field:
                ok = self._fail(
                    prefix + field["name"],
                    "is in the reader but not the writer, and has no default",
                )
        return ok

    def _fail(self, path: str, message: str) -> bool:
        if path:
            self.problems.append(Incompatibility(path, message))
        return False


def can_read(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why data written with ``writer`` cannot be read with ``reader`` (empty: it can)."""
    resolver = _Resolver(reader, writer)
    resolver.check(reader, writer, "")
    return resolver.problems
