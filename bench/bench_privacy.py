"""What crypto-shredding costs per event: codec encode/decode alone (the baseline) beside
encode with sealing and decode with opening, the keys cached as in a running process.

The events are one of each type (every event type, evenly). No servers: the key store
is an in-memory one (what is measured is the CPU of AES-GCM and
of walking the events; a real store is asked once per run and once per key id). Prints a
table and a final JSON line.

    .venv/bin/python bench/bench_privacy.py [--events 10000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from domain.events import Event
from streams.codec import EventCodec
from streams.privacy import SEALED_BYTES, Privacy
from streams.schema_registry import SchemaRegistry
from tests.factories import all_events

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


class MemoryKeys:
    """A key store in a dict: one key per run, as the Postgres one hands out."""

    def __init__(self) -> None:
        self._by_id: dict[str, bytes] = {}

    async def key_for_run(
        self, tenant_id: str, run_id: str, subject: str | None, new_run: bool = False
    ) -> tuple[str, bytes]:
        key_id = f"k-{tenant_id}"
        return key_id, self._by_id.setdefault(key_id, os.urandom(32))

    async def keys(self, key_ids: Sequence[str]) -> Mapping[str, bytes | None]:
        return {k: self._by_id.get(k) for k in key_ids}

    async def close(self) -> None:
        return None


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


async def measure(n: int, rounds: int) -> dict[str, float]:
    """Best of ``rounds`` interleaved rounds of each side (the machine is shared)."""
    codec = EventCodec(SchemaRegistry.from_dir(SCHEMAS))
    privacy = Privacy(codec.registry, MemoryKeys())
    sample: list[Event] = all_events()
    events = [sample[i % len(sample)] for i in range(n)]
    best: dict[str, float] = {}
    for _ in range(rounds):
        t0 = time.perf_counter()
        plain = [codec.encode(e) for e in events]
        t1 = time.perf_counter()
        decoded = [codec.decode(b) for b in plain]
        t2 = time.perf_counter()
        sealed = [codec.encode(e) for e in await privacy.seal(events)]
        t3 = time.perf_counter()
        opened = await open_like_the_consumer(codec, privacy, sealed)
        t4 = time.perf_counter()
        assert opened == decoded  # a consumer with the keys sees what was appended
        for name, rate_ in (
            ("encode_per_s", rate(n, t1 - t0)),
            ("decode_per_s", rate(n, t2 - t1)),
            ("seal_encode_per_s", rate(n, t3 - t2)),
            ("decode_open_per_s", rate(n, t4 - t3)),
        ):
            best[name] = max(best.get(name, 0.0), rate_)
    return best


async def open_like_the_consumer(
    codec: EventCodec, privacy: Privacy, values: list[bytes]
) -> list[Event]:
    """Decode, then open only the records whose bytes hold a sealed value."""
    out = [codec.decode(b) for b in values]
    marked = [i for i, b in enumerate(values) if SEALED_BYTES in b]
    for i, event in zip(marked, await privacy.open([out[i] for i in marked]), strict=True):
        out[i] = event
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    r = asyncio.run(measure(args.events, args.rounds))
    print(f"{'events/s (one core)':<24}{'baseline':>12}{'with privacy':>14}{'ratio':>8}")
    for name, base, priv in (
        ("append side (encode)", r["encode_per_s"], r["seal_encode_per_s"]),
        ("consume side (decode)", r["decode_per_s"], r["decode_open_per_s"]),
    ):
        print(f"{name:<24}{base:>12,.0f}{priv:>14,.0f}{priv / base:>8.2f}")
    print(json.dumps({"bench": "privacy", "events": args.events, **r}))


if __name__ == "__main__":
    main()
