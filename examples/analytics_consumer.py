"""A standalone analytics consumer: decodes OmniHub events with the .avsc files alone.

It imports nothing from OmniHub: only aiokafka, fastavro and the schema folder, which
is all a consumer in any language needs. Run it with its own consumer group:

    python examples/analytics_consumer.py --bootstrap 127.0.0.1:9092 \
        --schemas schemas --group my-analytics --topic omnihub.runs.v1

Wire format of every message value (Avro single-object encoding):
    C3 01 | CRC-64-AVRO fingerprint of the writer schema, 8 bytes little-endian | body

Personal fields (``"omnihub.personal": true`` in the schemas) hold sealed values,
``enc:v1:<key_id>:<base64 nonce + AES-GCM ciphertext>``. A consumer trusted with them
gets the data keys from OmniHub's Postgres (``privacy_keys``) and unwraps them with the
key-encryption key (``--postgres`` and ``--kek``, the ``OMNIHUB_PRIVACY_KEK`` value).
Without them, or once a subject was erased (its key is gone), the value reads
``[erased]``; the rest of the event reads as always.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form


def load_schemas(folder: Path) -> dict[bytes, Any]:
    """Every schema version in ``folder``, by its 8-byte fingerprint."""
    by_fp: dict[bytes, Any] = {}
    for path in sorted(folder.glob("*.v*.avsc")):
        parsed = parse_schema(json.loads(path.read_text()), _write_hint=False)
        fp = fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO")
        by_fp[bytes.fromhex(fp)] = parsed
    return by_fp


def decode(value: bytes, schemas: dict[bytes, Any]) -> dict[str, Any]:
    """The event record in ``value``; raises ``ValueError`` if it is not one we know."""
    if value[:2] != b"\xc3\x01":
        raise ValueError("not Avro single-object encoding")
    schema = schemas.get(value[2:10])
    if schema is None:
        raise ValueError(f"unknown schema fingerprint {value[2:10].hex()}")
    record = schemaless_reader(io.BytesIO(value[10:]), schema, None)
    assert isinstance(record, dict)
    return record


SEALED = "enc:v1:"
ERASED = "[erased]"


class Keys:
    """Data keys by id, read from Postgres once each and unwrapped with the KEK."""

    def __init__(self, dsn: str | None, kek_b64: str | None, schema: str = "public") -> None:
        self._dsn, self._schema = dsn, schema
        self._kek = base64.b64decode(kek_b64) if kek_b64 else None
        self._cache: dict[str, bytes | None] = {}

    async def get(self, key_id: str) -> bytes | None:
        if key_id not in self._cache:
            self._cache[key_id] = await self._read(key_id)
        return self._cache[key_id]

    async def _read(self, key_id: str) -> bytes | None:
        if self._dsn is None or self._kek is None:
            return None
        import asyncpg  # only a consumer trusted with keys needs Postgres

        conn = await asyncpg.connect(self._dsn)
        try:
            wrapped = await conn.fetchval(
                f'SELECT wrapped FROM "{self._schema}".privacy_keys WHERE key_id = $1', key_id
            )
        finally:
            await conn.close()
        if wrapped is None:  # erased (or never known): the ciphertext stays shut
            return None
        try:
            return AESGCM(self._kek).decrypt(wrapped[:12], wrapped[12:], key_id.encode())
        except InvalidTag:  # wrapped by another KEK
            return None


async def open_sealed(value: Any, keys: Keys) -> Any:
    """``value`` (a decoded record) with every sealed string opened, or ``[erased]``."""
    if isinstance(value, str) and value.startswith(SEALED):
        key_id, _, b64 = value[len(SEALED) :].partition(":")
        key, raw = await keys.get(key_id), base64.b64decode(b64)
        if key is None:
            return ERASED
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], key_id.encode()).decode()
        except InvalidTag:
            return ERASED
    if isinstance(value, dict):
        return {k: await open_sealed(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [await open_sealed(v, keys) for v in value]
    return value


async def consume(args: argparse.Namespace) -> None:
    schemas = load_schemas(Path(args.schemas))
    keys = Keys(args.postgres, args.kek, args.pg_schema)
    consumer = AIOKafkaConsumer(
        *args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    await consumer.start()
    counts: Counter[str] = Counter()
    skipped = 0
    try:
        seen = 0
        async for msg in consumer:
            try:
                event = decode(msg.value or b"", schemas)
            except ValueError as exc:
                # The log can hold records no schema here decodes (a newer schema this
                # copy of schemas/ lacks, or bytes a buggy producer wrote). Skip, count
                # and say where it is: OmniHub's own consumers dead-letter the same
                # record, with its reason, in omnihub.deadletter.v1 (header dlq.source).
                skipped += 1
                source = f"{msg.topic}:{msg.partition}:{msg.offset}"
                print(f"skipped {source}: {exc}", file=sys.stderr, flush=True)
                continue
            event = await open_sealed(event, keys)
            env = event["envelope"]
            counts[env["event_type"]] += 1
            goal = f" goal={event['goal']!r}" if "goal" in event else ""
            print(
                f"{env['occurred_at']:%H:%M:%S} {env['event_type']:<24} "
                f"tenant={env['tenant_id']} run={env['run_id']}{goal}",
                flush=True,
            )
            seen += 1
            if args.max and seen >= args.max:
                break
    finally:
        await consumer.stop()
        print("counts:", dict(counts))
        if skipped:
            print(
                f"skipped {skipped} undecodable record(s); find them with "
                "'omnihub tail --topic deadletter --from-beginning --no-follow' "
                "or by their dlq.source header",
                file=sys.stderr,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--schemas", default=str(Path(__file__).parents[1] / "schemas"))
    parser.add_argument("--group", default="analytics-example")
    parser.add_argument("--topic", action="append", default=None)
    parser.add_argument("--max", type=int, default=0, help="stop after N events (0: never)")
    parser.add_argument("--postgres", help="DSN of OmniHub's Postgres, to get data keys")
    parser.add_argument("--pg-schema", default="public", help="the schema of privacy_keys")
    parser.add_argument("--kek", help="the key-encryption key (base64), to unwrap them")
    args = parser.parse_args()
    args.topic = args.topic or ["omnihub.runs.v1"]
    asyncio.run(consume(args))


if __name__ == "__main__":
    main()
