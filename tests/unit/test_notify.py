"""What approvers are told and how a webhook is signed: pure."""

from __future__ import annotations

from domain.notify import approval_url, backoff, body_of, channel_secret, message, sign, verify
from tests.integration.test_projection_store import story


def test_a_signature_holds_only_for_its_secret_body_and_time() -> None:
    secret = channel_secret("server-secret", "c1")
    assert secret != channel_secret("server-secret", "c2")
    sig = sign(secret, 1000, b"{}")
    assert sig.startswith("sha256=") and verify(secret, 1000, b"{}", sig, now=1100)
    assert not verify(secret, 1000, b"{ }", sig, now=1100)
    assert not verify(secret, 1001, b"{}", sig, now=1100)
    assert not verify(secret, 1000, b"{}", sig, now=1000 + 301)  # too old: a replay


def test_the_message_links_to_the_approvals_page() -> None:
    requested = story("r1", "acme", 2)[4]
    msg = message(requested, "https://omni.example/")  # type: ignore[arg-type]
    assert msg["url"] == approval_url("https://omni.example", "ap-r1")
    assert msg["url"] == "https://omni.example/dashboard/approvals?id=ap-r1"
    assert (msg["run_id"], msg["tenant_id"], msg["step_id"]) == ("r1", "acme", "s1")
    assert body_of(msg) == body_of(dict(reversed(msg.items())))  # stable bytes to sign


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 0.5, cap_s=3) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 3.0]
