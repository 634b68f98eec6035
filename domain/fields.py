"""A dataclass's field names and one getter of all their values, built once per type.

The projector reads every event's fields several times (escaping text, the timeline
payload, the rows it writes); the generic ``dataclasses.fields()`` lookup per call cost
more than the work it fed. Pure.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

Getter = Callable[[Any], tuple[Any, ...]]

_FOUND: dict[tuple[type, str], tuple[tuple[str, ...], Getter]] = {}


def fields_of(cls: type, skip: str = "") -> tuple[tuple[str, ...], Getter]:
    """``cls``'s field names (but ``skip``) and a getter of their values as a tuple; no
    names when ``cls`` is not a dataclass."""
    found = _FOUND.get((cls, skip))
    if found is None:
        names = (
            tuple(f.name for f in dataclasses.fields(cls) if f.name != skip)
            if dataclasses.is_dataclass(cls)
            else ()
        )
        found = _FOUND[(cls, skip)] = (names, _getter(names))
    return found


def _getter(names: tuple[str, ...]) -> Getter:
    if len(names) > 1:
        return operator.attrgetter(*names)  # returns a tuple for two names or more
    return lambda obj: tuple(getattr(obj, n) for n in names)
