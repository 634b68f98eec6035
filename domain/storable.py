"""Text every read model can hold: Postgres ``text`` and ``jsonb`` refuse U+0000, and
UTF-8 (so asyncpg, and Avro) cannot encode an unpaired surrogate. Pure.

The API refuses both in what it accepts (422 naming the field). Text that reaches a
projection from elsewhere (a tool's error message, a model's output, a request path in
an audit fact) is escaped instead: each such code point becomes the six characters
``\\uXXXX``, as JSON would write it. The log keeps the exact text; only the read models
show the escape, so a fact is never dropped for its content.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from domain.fields import fields_of

T = TypeVar("T")

NUL = "\x00"


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored as is (a phrase naming the code point), or None."""
    if NUL in text:
        return "must not contain U+0000 (NUL)"
    if not text.isascii() and not _encodable(text):
        return "must not contain unpaired surrogates (U+D800-U+DFFF)"
    return None


def storable_text(text: str) -> str:
    """``text`` with U+0000 and unpaired surrogates escaped as ``\\uXXXX``."""
    if text.isascii():
        return text.replace(NUL, "\\u0000") if NUL in text else text
    if NUL not in text and _encodable(text):
        return text
    return "".join(_escape(c) for c in text)


def utf8_text(text: str) -> str:
    """``text`` with only unpaired surrogates escaped: what UTF-8 (and so Avro) can carry."""
    if text.isascii() or _encodable(text):
        return text
    return "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


def storable(value: T) -> T:
    """``value`` with every string inside it (dataclass fields, tuples, lists, dict keys
    and values) made storable; the very same object when nothing needed escaping."""
    return _walk(value, storable_text)  # type: ignore[no-any-return]


def utf8_safe(value: T) -> T:
    """``value`` with every string inside it made encodable as UTF-8 (:func:`utf8_text`):
    for facts about to be appended to the log, where NUL is fine but a surrogate is not."""
    return _walk(value, utf8_text)  # type: ignore[no-any-return]


# Values that hold no text: returned as they are without a closer look.
_LEAVES = frozenset({int, float, bool, type(None), bytes, datetime})
_FLAT = _LEAVES | {str}


def _walk(value: Any, fix: Callable[[str], str]) -> Any:
    kind = type(value)
    if kind is str:
        return fix(value)
    if kind in _LEAVES:
        return value
    names, values = fields_of(kind)
    if names:
        return _walk_fields(value, names, values(value), fix)
    if not value:  # an empty tuple, list or dict
        return value
    if isinstance(value, tuple | list):
        items = [_walk(v, fix) for v in value]
        if all(a is b for a, b in zip(items, value, strict=True)):
            return value
        return type(value)(items)
    if isinstance(value, dict):
        pairs = [(_walk(k, fix), _walk(v, fix)) for k, v in value.items()]
        if all(k is a and v is b for (k, v), (a, b) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    return value


def _walk_fields(
    value: Any, names: tuple[str, ...], fields: tuple[Any, ...], fix: Callable[[str], str]
) -> Any:
    """A dataclass ``value`` whose fields are ``fields``, with its text fixed."""
    # One check of all the text at once: a fix leaves a concatenation as it is exactly
    # when it leaves every part as it is, and most events need no fixing.
    text = "".join([v for v in fields if type(v) is str])
    clean = fix(text) is text
    if clean and _FLAT.issuperset(map(type, fields)):
        return value
    changed = None
    for name, old in zip(names, fields, strict=True):
        inner = type(old)
        if inner in _LEAVES or (clean and inner is str):
            continue
        new = fix(old) if inner is str else _walk(old, fix)
        if new is not old:
            changed = changed or {}
            changed[name] = new
    return dataclasses.replace(value, **changed) if changed else value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _escape(char: str) -> str:
    code = ord(char)
    if code == 0 or 0xD800 <= code <= 0xDFFF:
        return f"\\u{code:04x}"
    return char
