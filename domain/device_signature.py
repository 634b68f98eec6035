"""Requests signed by a trusted device's Ed25519 key: what is signed and how it is checked.

A device signs, with its private key, the canonical text of a request::

    OMNIHUB-DEVICE-V1
    <METHOD>
    <path>
    <query string, as sent>
    <unix seconds>
    <nonce>
    <device id>
    <hex SHA-256 of the body>

and sends the signature (base64url) with the device id, the time and the nonce in
headers (:data:`HEADERS`). The server rebuilds the text from the request it received, so
a changed method, path, query, body or time breaks the signature. Pure: the caller
looks the device up and keeps the nonces (single use within the window).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

DEVICE_HEADER = "x-omnihub-device"
TIMESTAMP_HEADER = "x-omnihub-timestamp"
NONCE_HEADER = "x-omnihub-nonce"
SIGNATURE_HEADER = "x-omnihub-signature"
HEADERS = (DEVICE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER)
VERSION = "OMNIHUB-DEVICE-V1"

Reason = Literal["malformed", "unknown", "revoked", "expired", "bad_signature", "replayed"]
_NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_DEVICE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_STAMP = re.compile(r"^[0-9]{1,12}$")


class DeviceRefused(Exception):
    """A device-signed request that does not prove anything; ``reason`` says why."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(detail)
        self.reason: Reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SignedRequest:
    """What a device-signed request carries, as received."""

    method: str
    path: str
    query: str
    body: bytes
    device_id: str
    timestamp: int
    nonce: str
    signature: bytes


def canonical(
    method: str, path: str, query: str, timestamp: int, nonce: str, device_id: str, body: bytes
) -> bytes:
    """The text a device signs for a request."""
    lines = (VERSION, method.upper(), path, query, str(timestamp), nonce, device_id)
    return "\n".join((*lines, hashlib.sha256(body).hexdigest())).encode()


def parse(
    method: str, path: str, query: str, body: bytes, headers: dict[str, str]
) -> SignedRequest:
    """The signed request from its headers; ``malformed`` if one is missing or invalid."""
    device, stamp = headers.get(DEVICE_HEADER, ""), headers.get(TIMESTAMP_HEADER, "")
    nonce, signature = headers.get(NONCE_HEADER, ""), headers.get(SIGNATURE_HEADER, "")
    if not (_DEVICE.match(device) and _NONCE.match(nonce) and _STAMP.match(stamp)):
        raise DeviceRefused("malformed", f"{', '.join(HEADERS)} are required and well formed")
    return SignedRequest(method, path, query, body, device, int(stamp), nonce, _unb64(signature))


def verify(request: SignedRequest, public_key: str, now: float, window_s: int) -> None:
    """Raise :class:`DeviceRefused` unless ``public_key`` signed ``request`` within
    ``window_s`` seconds of ``now`` (either side: clocks differ)."""
    if abs(now - request.timestamp) > window_s:
        raise DeviceRefused("expired", f"signed more than {window_s}s from the server's time")
    key = Ed25519PublicKey.from_public_bytes(_unb64(public_key, 32))
    text = canonical(
        request.method,
        request.path,
        request.query,
        request.timestamp,
        request.nonce,
        request.device_id,
        request.body,
    )
    try:
        key.verify(request.signature, text)
    except InvalidSignature:
        raise DeviceRefused("bad_signature", "the signature does not match") from None


def public_key_text(raw: bytes) -> str:
    """A raw 32-byte Ed25519 public key as the API and the events carry it."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def valid_public_key(text: str) -> bool:
    """Whether ``text`` is a base64url Ed25519 public key (32 bytes)."""
    try:
        Ed25519PublicKey.from_public_bytes(_unb64(text, 32))
    except (DeviceRefused, ValueError):
        return False
    return True


def _unb64(text: str, size: int | None = None) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DeviceRefused("malformed", "not base64url") from None
    if (size is not None and len(raw) != size) or not raw:
        raise DeviceRefused("malformed", "wrong length")
    return raw
