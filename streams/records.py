"""Converts event dataclasses to Avro records (dicts) and back, field by field.

The converters are built once per type from its annotations, so decoding a message
does no reflection.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

Convert = Callable[[Any], Any]
T = TypeVar("T")


def _identity(value: Any) -> Any:
    return value


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _from_avro_for(hint: Any) -> Convert:
    """A function turning the Avro value of a field typed ``hint`` into Python."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return _dataclass_reader(hint)  # type: ignore[arg-type]
    if hint is datetime:
        return _utc
    if origin is tuple:
        item = _from_avro_for(typing.get_args(hint)[0])
        if item is _identity:
            return tuple
        return lambda v: tuple([item(x) for x in v])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        conv = _from_avro_for(inner[0]) if len(inner) == 1 else _identity
        if conv is _identity:
            return _identity
        return lambda v: None if v is None else conv(v)
    if origin is not None and issubclass(origin, Mapping):
        return dict
    return _identity


def _to_avro_for(hint: Any) -> Convert:
    """A function turning a Python value of a field typed ``hint`` into Avro."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return to_record
    if origin is tuple:
        item = _to_avro_for(typing.get_args(hint)[0])
        return lambda v: [item(x) for x in v]
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        conv = _to_avro_for(inner[0]) if len(inner) == 1 else _identity
        return lambda v: None if v is None else conv(v)
    if origin is not None and issubclass(origin, Mapping):
        return dict
    return _identity


_FIELDS: dict[type, tuple[tuple[str, Convert, Convert], ...]] = {}


def _fields(cls: type) -> tuple[tuple[str, Convert, Convert], ...]:
    """(name, to Avro, from Avro) for each field of ``cls``, built on first use."""
    found = _FIELDS.get(cls)
    if found is None:
        hints = typing.get_type_hints(cls)
        found = _FIELDS[cls] = tuple(
            (f.name, _to_avro_for(hints[f.name]), _from_avro_for(hints[f.name]))
            for f in dataclasses.fields(cls)
        )
    return found


def _dataclass_reader(cls: type) -> Convert:
    return lambda record: from_record(cls, record)


def to_record(obj: Any) -> dict[str, Any]:
    """The Avro record (a dict) for a dataclass instance."""
    return {name: to_avro(getattr(obj, name)) for name, to_avro, _ in _fields(type(obj))}


def from_record(cls: type[T], record: Mapping[str, Any]) -> T:
    """An instance of dataclass ``cls`` from its Avro record; unknown keys are ignored."""
    # Positional, and without a call for the fields Avro already gives as Python: the
    # projector and rebuild decode every record through here.
    return cls(
        *[
            record[name] if from_avro is _identity else from_avro(record[name])
            for name, _, from_avro in _fields(cls)
        ]
    )
