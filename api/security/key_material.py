"""API key material: generation, parsing and the keyed hash that is all we store.

A key reads ``omh_<prefix>_<secret>``: ``prefix`` is 8 random lowercase letters and
digits (public, shown in listings and logs for support), ``secret`` is 32 random bytes,
urlsafe base64. Only ``HMAC-SHA-256(server secret, whole key)`` is kept, so a leaked
projection or log yields nothing that authenticates, and checking is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
from dataclasses import dataclass

KEY_PREFIX = "omh"
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_KEY_RE = re.compile(r"^omh_([a-z0-9]{8})_([A-Za-z0-9_-]{43,128})$")


@dataclass(frozen=True)
class NewKey:
    """A freshly minted key: ``plaintext`` is shown once and never stored."""

    plaintext: str
    prefix: str
    key_hash: str


def hash_key(secret_key: str, plaintext: str) -> str:
    """The stored form of ``plaintext``: hex HMAC-SHA-256 under the server secret."""
    return hmac.new(secret_key.encode(), plaintext.encode(), hashlib.sha256).hexdigest()


def generate(secret_key: str) -> NewKey:
    """A new random key with its prefix and keyed hash."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(8))
    plaintext = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(plaintext, prefix, hash_key(secret_key, plaintext))


def parse_prefix(plaintext: str) -> str | None:
    """The prefix of a well-formed key, or None when it cannot be an OmniHub key."""
    match = _KEY_RE.match(plaintext)
    return match.group(1) if match else None


def matches(secret_key: str, plaintext: str, stored_hash: str) -> bool:
    """Whether ``plaintext`` hashes to ``stored_hash``, compared in constant time."""
    return hmac.compare_digest(hash_key(secret_key, plaintext), stored_hash)
