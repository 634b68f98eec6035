"""Personal data in events: which fields, how they are sealed, what erased looks like.

A schema marks a field that can carry a person's data with the custom Avro property
``"omnihub.personal": true`` (Avro ignores unknown properties, so the parsing canonical
form and the fingerprint stay the same). At append every string in such a field is
replaced by a *sealed value*::

    enc:v1:<key_id>:<base64 of 12-byte nonce + AES-256-GCM ciphertext and tag>

sealed with the data key of the run's subject (the tenant, or a data subject named in
the request). The field's type does not change: a sealed value is a string. Opening it
needs the data key; once the key is destroyed (erasure) it opens to :data:`ERASED`.
Pure: no I/O, only the cipher.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PERSONAL = "omnihub.personal"  # the custom Avro property on a field
PREFIX = "enc:v1:"
ERASED = "[erased]"  # what a personal value reads as once its key is gone
NONCE_BYTES = 12

Path = tuple[str, ...]  # field names from the record down; "*" is every item or value


def personal_paths(schema: Mapping[str, Any]) -> tuple[Path, ...]:
    """Every marked field of a record schema, nested records and arrays included."""
    return tuple(_paths(schema, ()))


def _paths(schema: Any, at: Path) -> Iterator[Path]:
    if isinstance(schema, list):  # a union: look into each branch
        for branch in schema:
            yield from _paths(branch, at)
        return
    if not isinstance(schema, Mapping):
        return
    kind = schema.get("type")
    if kind == "record":
        for f in schema.get("fields", ()):
            if f.get(PERSONAL) is True:
                yield (*at, f["name"])
            else:
                yield from _paths(f["type"], (*at, f["name"]))
    elif kind == "array":
        yield from _paths(schema.get("items"), (*at, "*"))
    elif kind == "map":
        yield from _paths(schema.get("values"), (*at, "*"))
    elif isinstance(kind, Mapping | list):
        yield from _paths(kind, at)


def subject_hash(tenant_id: str, subject: str | None) -> str:
    """How the key store names a subject without keeping its name: the tenant's own
    data is subject ``None``."""
    name = f"tenant:{tenant_id}" if subject is None else f"subject:{subject}"
    return hashlib.sha256(name.encode()).hexdigest()


def key_id_of(sealed: str) -> str:
    """The data key a sealed value needs."""
    return sealed[len(PREFIX) :].split(":", 1)[0]


def seal_text(key_id: str, key: bytes | AESGCM, text: str) -> str:
    """``text`` sealed with data key ``key`` (its id is bound in as associated data)."""
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    nonce = os.urandom(NONCE_BYTES)
    body = cipher.encrypt(nonce, text.encode(), key_id.encode())
    return f"{PREFIX}{key_id}:{base64.b64encode(nonce + body).decode()}"


def open_text(sealed: str, key: bytes | AESGCM | None) -> str:
    """The plaintext of ``sealed``, or :data:`ERASED` without its key (or if tampered)."""
    if key is None:
        return ERASED
    cipher = key if isinstance(key, AESGCM) else AESGCM(key)
    key_id, _, b64 = sealed[len(PREFIX) :].partition(":")
    raw = base64.b64decode(b64)
    try:
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], key_id.encode()).decode()
    except (InvalidTag, ValueError):
        return ERASED


def map_paths(value: Any, paths: Iterable[Path], fn: Callable[[str], str]) -> Any:
    """``value`` (an event, a nested record, a tuple or mapping) with ``fn`` applied to
    every string at ``paths``."""
    out = value
    for path in paths:
        out = _map_at(out, path, fn)
    return out


def _map_at(value: Any, path: Path, fn: Callable[[str], str]) -> Any:
    if value is None:
        return None
    if not path:
        return _map_leaf(value, fn)
    head, rest = path[0], path[1:]
    if head == "*":
        if isinstance(value, Mapping):
            return {k: _map_at(v, rest, fn) for k, v in value.items()}
        return tuple(_map_at(v, rest, fn) for v in value)
    inner = _map_at(getattr(value, head), rest, fn)
    return dataclasses.replace(value, **{head: inner})


def _map_leaf(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, Mapping):
        return {k: _map_leaf(v, fn) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return tuple(_map_leaf(v, fn) for v in value)
    return value


def sealed_strings(value: Any) -> Iterator[str]:
    """Every sealed string anywhere in an event (any field, at any depth)."""
    if isinstance(value, str):
        if value.startswith(PREFIX):
            yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from sealed_strings(getattr(value, f.name))
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from sealed_strings(v)
    elif isinstance(value, tuple | list):
        for v in value:
            yield from sealed_strings(v)


def open_all(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every sealed string, wherever it is (a sealed
    value copied into another event, such as an approval's reason into an audit
    record's details, opens too)."""
    if isinstance(value, str):
        return fn(value) if value.startswith(PREFIX) else value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            f.name: new
            for f in dataclasses.fields(value)
            if (new := open_all(old := getattr(value, f.name), fn)) is not old
        }
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, Mapping):
        opened = {k: open_all(v, fn) for k, v in value.items()}
        return opened if any(opened[k] is not v for k, v in value.items()) else value
    if isinstance(value, tuple):
        items = tuple(open_all(v, fn) for v in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def erase_json(value: Any, names: frozenset[str]) -> Any:
    """A stored JSON document (a timeline payload, audit details) with the values of
    personal fields, found by name, read as erased: what a replay with the key gone
    would have stored."""
    if isinstance(value, dict):
        return {
            k: _map_leaf(v, _erased) if k in names else erase_json(v, names)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [erase_json(v, names) for v in value]
    return value


def _erased(text: str) -> str:
    # Empty values are never sealed, so they stay empty; a sealed value already reads
    # erased without its key (and is what a replay stores: an audit record's copy).
    return text if not text or text.startswith(PREFIX) else ERASED
