"""Device-signed requests, decided purely: what is signed, and each way it is refused."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from domain.device_signature import (
    DeviceRefused,
    canonical,
    parse,
    public_key_text,
    valid_public_key,
    verify,
)

KEY = Ed25519PrivateKey.generate()
PUBLIC = public_key_text(KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
NOW = 1_800_000_000


def headers(
    body: bytes = b"{}", at: int = NOW, nonce: str = "n0nce-123", **over: str
) -> dict[str, str]:
    text = canonical("POST", "/api/v1/goals", "a=1", at, nonce, "dev-1", body)
    sig = base64.urlsafe_b64encode(KEY.sign(text)).rstrip(b"=").decode()
    found = {
        "x-omnihub-device": "dev-1",
        "x-omnihub-timestamp": str(at),
        "x-omnihub-nonce": nonce,
        "x-omnihub-signature": sig,
    }
    return {**found, **over}


def check(h: dict[str, str], body: bytes = b"{}", now: float = NOW) -> None:
    verify(parse("POST", "/api/v1/goals", "a=1", body, h), PUBLIC, now, 300)


def test_a_request_signed_by_the_device_passes_within_the_window() -> None:
    check(headers())
    check(headers(), now=NOW + 299)
    assert valid_public_key(PUBLIC) and not valid_public_key("A" * 10)


@pytest.mark.parametrize(
    "h,body,now,reason",
    [
        (headers(), b'{"x": 1}', NOW, "bad_signature"),  # another body
        (headers(), b"{}", NOW + 301, "expired"),
        (headers(at=NOW + 400), b"{}", NOW, "expired"),  # from the future
        (headers(**{"x-omnihub-nonce": "short"}), b"{}", NOW, "malformed"),
        (headers(**{"x-omnihub-timestamp": "\uff11\uff12"}), b"{}", NOW, "malformed"),
        (headers(**{"x-omnihub-signature": "!!"}), b"{}", NOW, "malformed"),
        (headers(**{"x-omnihub-nonce": "another-nonce"}), b"{}", NOW, "bad_signature"),
    ],
)
def test_each_refusal_names_its_reason(
    h: dict[str, str], body: bytes, now: float, reason: str
) -> None:
    with pytest.raises(DeviceRefused) as refused:
        check(h, body, now)
    assert refused.value.reason == reason
