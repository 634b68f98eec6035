"""What approvers are told, and how a webhook proves it came from OmniHub. Pure.

A webhook carries ``X-OmniHub-Timestamp`` (Unix seconds) and ``X-OmniHub-Signature:
sha256=<hex>``, the HMAC-SHA-256 of ``<timestamp>.<body>`` under the channel's secret.
A receiver recomputes it and refuses a timestamp older than its tolerance, so a captured
request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from domain.events import ApprovalRequested

KINDS = frozenset({"webhook", "email", "webpush"})
SIGNATURE_HEADER = "X-OmniHub-Signature"
TIMESTAMP_HEADER = "X-OmniHub-Timestamp"


def channel_secret(server_secret: str, channel_id: str) -> str:
    """A webhook channel's signing secret, derived (never stored in the log)."""
    return hmac.new(
        server_secret.encode(), f"webhook:{channel_id}".encode(), hashlib.sha256
    ).hexdigest()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(
    secret: str, timestamp: int, body: bytes, signature: str, now: int, tolerance_s: int = 300
) -> bool:
    """Whether a received webhook is authentic and fresh (what a receiver checks)."""
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def approval_url(dashboard_base: str, approval_id: str) -> str:
    """The approval's place in the dashboard."""
    return f"{dashboard_base.rstrip('/')}/dashboard/approvals?id={approval_id}"


def message(event: ApprovalRequested, dashboard_base: str) -> dict[str, Any]:
    """The notification's content, the same for every channel."""
    env = event.envelope
    return {
        "type": "approval_requested",
        "approval_id": event.approval_id,
        "run_id": env.run_id,
        "tenant_id": env.tenant_id,
        "step_id": event.step_id,
        "tool": event.tool,
        "risk": event.risk,
        "reasons": list(event.reasons),
        "expires_at": event.expires_at.isoformat(),
        "url": approval_url(dashboard_base, event.approval_id),
        "title": f"Approval needed: {event.tool} (risk {event.risk:.2f})",
    }


def body_of(msg: dict[str, Any]) -> bytes:
    """The JSON bytes that are sent (and signed)."""
    return json.dumps(msg, separators=(",", ":"), sort_keys=True).encode()


def backoff(attempt: int, base_s: float, cap_s: float = 30.0) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): doubling, capped."""
    return float(min(cap_s, base_s * 2.0 ** (attempt - 1)))
