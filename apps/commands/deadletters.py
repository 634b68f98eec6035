"""``omnihub deadletters list|show|replay``: what the consumers gave up on, and sending it
back after a fix.

``replay`` appends each chosen record's original bytes, key and headers to its source
topic again (with ``dlq.replay_of`` naming the letter), so every consumer reads it anew:
the one that dead-lettered it tries again with its fixed code or schemas, and the others
recognise an event they already applied by its ``event_id`` and change nothing. Replaying
the same letter twice is therefore harmless. Each replay is recorded as an audit fact
(category ``operations``) in the record's tenant's chain, naming the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from apps.commands.operator import PLATFORM_TENANT, Operator, add_as, operator_of
from apps.commands.tail import instant
from omnihub.settings import Settings, get_settings


@dataclass(frozen=True)
class Letter:
    """One dead-letter record, as an operator reads it."""

    position: str  # where the letter is: deadletter topic:partition:offset
    consumer: str
    reason: str
    detail: str
    source: str  # where the original was: topic:partition:offset
    event_type: str
    tenant_id: str
    at: str


def register(sub: Any) -> None:
    """Add ``deadletters``."""
    group = sub.add_parser("deadletters", help="records the consumers gave up on")
    cmds = group.add_subparsers(dest="action", required=True)
    for name, text in (
        ("list", "the letters, newest last, filtered"),
        ("show", "the letters of one source record (topic:partition:offset)"),
        ("replay", "append the originals to their topics again, for their consumers"),
    ):
        cmd = cmds.add_parser(name, help=text)
        if name != "list":
            cmd.add_argument("source", nargs="?", help="topic:partition:offset of the original")
        cmd.add_argument("--consumer", help="only letters of this consumer")
        cmd.add_argument("--reason", help="only this reason (a prefix: fold_failed matches all)")
        cmd.add_argument("--since", type=instant, help="only letters written at or after")
        cmd.add_argument("--json", action="store_true", help="one JSON object per line")
        if name == "replay":
            add_as(cmd)
        cmd.set_defaults(handler=_run, action=name)


def _run(args: argparse.Namespace) -> int:
    if args.action == "replay" and not (args.source or args.consumer or args.reason):
        print("deadletters replay: name a source, --consumer or --reason", file=sys.stderr)
        return 2
    letters = asyncio.run(_read(get_settings(), args))
    if args.action == "replay":
        operator = operator_of(args)
        replayed = asyncio.run(_replay(get_settings(), letters, operator))
        print(f"replayed {replayed} record(s) to their topics as {operator.actor}")
        return 0
    for letter, _raw in letters:
        if args.json:
            print(json.dumps(asdict(letter)))
        else:
            print(f"{letter.at} {letter.consumer:<20} {letter.reason:<24} {letter.source} "
                  f"{letter.event_type or '-'} {letter.detail[:120]}")  # fmt: skip
    if args.action == "show" and not letters:
        print(f"no dead letters for {args.source}", file=sys.stderr)
        return 1
    return 0


async def _read(settings: Settings, args: argparse.Namespace) -> list[tuple[Letter, Any]]:
    from streams.replay import end_offsets, replay
    from streams.topics import Topic, topic_name

    dlq = topic_name(settings, Topic.DEADLETTER)
    ends = await end_offsets(settings.kafka_bootstrap, [dlq])
    out = []
    async for topic, partition, batch in replay(
        settings.kafka_bootstrap, {k: (0, v) for k, v in ends.items()}
    ):
        for raw in batch:
            letter = _letter(f"{topic}:{partition}:{raw.offset}", dict(raw.headers))
            if _wanted(letter, args):
                out.append((letter, raw))
    return out


def _letter(position: str, headers: dict[str, bytes]) -> Letter:
    def h(name: str) -> str:
        return headers.get(name, b"").decode(errors="replace")

    return Letter(
        position=position,
        consumer=h("dlq.consumer") or h("dlq.processor"),  # dlq.processor: older letters
        reason=h("dlq.reason"),
        detail=h("dlq.detail"),
        source=h("dlq.source"),
        event_type=h("event_type"),
        tenant_id=h("tenant_id"),
        at=h("dlq.at"),
    )


def _wanted(letter: Letter, args: argparse.Namespace) -> bool:
    since = args.since.isoformat() if args.since else ""
    return (
        (not getattr(args, "source", None) or letter.source == args.source)
        and (args.consumer is None or letter.consumer == args.consumer)
        and (args.reason is None or letter.reason.startswith(args.reason))
        and (not since or not letter.at or letter.at >= since)
    )


async def _replay(settings: Settings, letters: list[tuple[Letter, Any]], operator: Operator) -> int:
    from aiokafka import AIOKafkaProducer

    from api.security.audit import audit_fact
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender, producer_config
    from streams.schema_registry import SchemaRegistry

    producer = AIOKafkaProducer(**producer_config(settings))
    appender = KafkaEventAppender(
        settings, EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    )
    await producer.start()
    try:
        for letter, raw in letters:
            topic = letter.source.rsplit(":", 2)[0]
            headers = [(k, v) for k, v in raw.headers if not k.startswith("dlq.")]
            headers.append(("dlq.replay_of", f"{letter.consumer}@{letter.source}".encode()))
            await producer.send_and_wait(topic, value=raw.value, key=raw.key, headers=headers)
            await appender.append(audit_fact(
                letter.tenant_id or PLATFORM_TENANT, "operations", "deadletter_replay", "success",
                subject=operator.actor, resource=f"record:{letter.source}",
                details={"consumer": letter.consumer, "reason": letter.reason,
                         "at": datetime.now(UTC).isoformat(), **operator.details()},
            ))  # fmt: skip
    finally:
        await producer.stop()
        await appender.stop()
    return len(letters)
