"""The live stream's pure half: positions, filters, run status folds and SSE frames.

A stream position is the log position to resume from, one entry per partition:
``<topic>:<partition>:<next offset>`` joined by commas. Sealed (``PositionSeal``), it is
every frame's SSE ``id``, so a browser's ``EventSource`` sends the last one back as
``Last-Event-ID`` when it reconnects and the stream resumes exactly after what it
delivered. Sealed, because the runs topic is shared by every tenant: plain offsets would
tell one tenant how much the others write (the read API's freshness hides them too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from domain.events import Event
from domain.run_view import RunView, evolve_run
from domain.timeline import payload, summarize

Position = dict[tuple[str, int], int]


def parse_position(text: str | None) -> Position | None:
    """The position ``text`` names; None when absent or not a position at all."""
    if not text:
        return None
    out: Position = {}
    for part in text.split(","):
        topic, sep, rest = part.strip().rpartition(":")
        name, sep2, partition = topic.rpartition(":")
        if not (sep and sep2 and name and partition.isdigit() and rest.isdigit()):
            return None
        out[(name, int(partition))] = int(rest)
    return out or None


def format_position(position: Mapping[tuple[str, int], int]) -> str:
    """``topic:partition:offset`` per partition, in a stable order."""
    return ",".join(f"{t}:{p}:{o}" for (t, p), o in sorted(position.items()))


class PositionSeal:
    """Positions as opaque tokens only this deployment can open, each bound to a tenant.

    AES-GCM under a key derived from the deployment's secret, with the tenant as the
    associated data: another tenant's token, or an edited one, opens to nothing.
    """

    PREFIX = "p1."

    def __init__(self, secret: str) -> None:
        key = hashlib.sha256(f"omnihub stream position\0{secret}".encode()).digest()
        self._aead = AESGCM(key)

    def seal(self, position: Mapping[tuple[str, int], int], tenant_id: str) -> str:
        """The token for ``position``, for ``tenant_id``'s streams only."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, format_position(position).encode(), tenant_id.encode())
        return self.PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")

    def open(self, token: str | None, tenant_id: str) -> Position | None:
        """The position in ``token``; None when absent, foreign, edited or not a token."""
        if not token or not token.startswith(self.PREFIX):
            return None
        body = token.removeprefix(self.PREFIX)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            plain = self._aead.decrypt(raw[:12], raw[12:], tenant_id.encode())
        except (InvalidTag, ValueError, binascii.Error):
            return None
        return parse_position(plain.decode(errors="replace"))


@dataclass(frozen=True)
class StreamFilter:
    """Which records a stream carries: one tenant, and optionally some runs and types."""

    tenant_id: str
    run_ids: frozenset[str] = frozenset()
    event_types: frozenset[str] = frozenset()

    def admits(self, tenant_id: str | None, run_id: str | None, event_type: str | None) -> bool:
        """Whether a record with these headers and key belongs on the stream."""
        if tenant_id != self.tenant_id:
            return False
        if self.run_ids and run_id not in self.run_ids:
            return False
        return not self.event_types or event_type in self.event_types


class RunFolds:
    """The runs a stream has seen, folded with the projections' own ``evolve_run``.

    A run first seen mid-way (a stream opened after it began) is folded from that
    event; its status is reported only once the fold knows it (``known``). Bounded: the
    least recently updated run is forgotten first.
    """

    def __init__(self, capacity: int = 1000) -> None:
        self._runs: OrderedDict[str, tuple[RunView, bool]] = OrderedDict()
        self._capacity = capacity

    def apply(self, event: Event) -> tuple[RunView, bool]:
        """The run after ``event`` and whether its status is known from its start."""
        run_id = event.envelope.run_id
        seen = self._runs.pop(run_id, None)
        known = event.envelope.event_type == "goal_received" if seen is None else seen[1]
        view = evolve_run(seen[0] if seen else None, event)
        known = known or view.status != "received"
        self._runs[run_id] = (view, known)
        while len(self._runs) > self._capacity:
            self._runs.popitem(last=False)
        return view, known


def run_event_data(event: Event, view: RunView, known: bool) -> dict[str, Any]:
    """The JSON body of a ``run_event`` frame: the event and the run it leaves."""
    env = event.envelope
    run: dict[str, Any] = {
        "run_id": view.run_id,
        "status": view.status if known else None,
        "steps_planned": view.steps_planned,
        "steps_completed": view.steps_completed,
        "pending_approvals": view.pending_approvals,
        "cache_hit": view.cache_hit,
    }
    return {
        "event_id": env.event_id,
        "event_type": env.event_type,
        "run_id": env.run_id,
        "occurred_at": env.occurred_at.isoformat(),
        "actor": env.actor,
        "summary": summarize(event),
        "payload": payload(event),
        "run": run,
    }


def sse_frame(event: str, data: Any, frame_id: str | None = None) -> bytes:
    """One Server-Sent Events frame (``data`` as one line of JSON)."""
    lines = [f"event: {event}"]
    if frame_id is not None:
        lines.append(f"id: {frame_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":"), default=str))
    return ("\n".join(lines) + "\n\n").encode()


def split_filter(values: Iterable[str]) -> frozenset[str]:
    """Query values like ``a,b`` or repeated ``a`` ``b`` as one set."""
    return frozenset(v.strip() for value in values for v in value.split(",") if v.strip())
