"""``omnihub tail``: decoded events, live or up to now, filtered.

With ``--json`` every line on stdout is one JSON object; anything else (records that
cannot be decoded, a summary) goes to stderr, so the output can be piped into ``jq``.
The dead-letter topic holds copies of records that failed elsewhere: it is read only
when asked for with ``--topic deadletter``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from domain.events import EVENT_TYPES, Event
from omnihub.settings import get_settings

if TYPE_CHECKING:
    from streams.privacy import Privacy

TOPICS = ("runs", "audit", "control", "deadletter")
DEFAULT_TOPICS = ("runs", "audit", "control")


def register(sub: Any) -> None:
    """Add ``tail``."""
    tail = sub.add_parser("tail", help="print decoded events live", description=__doc__)
    tail.add_argument("--run", help="only this run id")
    tail.add_argument("--tenant", help="only this tenant")
    tail.add_argument(
        "--type", action="append", dest="types", help="only this event type (repeatable)"
    )
    tail.add_argument(
        "--topic", action="append", dest="topics", choices=TOPICS,
        help="read this topic (repeatable; default runs, audit and control)",
    )  # fmt: skip
    tail.add_argument("--since", type=instant, help="only events that occurred at or after")
    tail.add_argument("--until", type=instant, help="only events that occurred before")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest event")
    tail.add_argument("--no-follow", action="store_true", help="stop at the current end")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    tail.set_defaults(handler=_tail)


def instant(text: str) -> datetime:
    """An ISO 8601 time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def unknown_types(types: Sequence[str] | None) -> list[str]:
    """The names in ``types`` that are no event type."""
    return sorted(set(types or ()) - set(EVENT_TYPES))


def _tail(args: argparse.Namespace) -> int:
    if bad := unknown_types(args.types):
        known = ", ".join(sorted(EVENT_TYPES))
        print(f"tail: unknown event type(s) {', '.join(bad)}; known: {known}", file=sys.stderr)
        return 2
    try:
        asyncio.run(_tail_async(args))
    except KeyboardInterrupt:
        pass
    return 0


async def _tail_async(args: argparse.Namespace) -> None:
    from apps.commands.log import format_event
    from projections.keyring import privacy_for
    from streams.codec import EventCodec
    from streams.log_reader import read_log
    from streams.schema_registry import SchemaRegistry
    from streams.topics import Topic, topic_name

    settings = get_settings()
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    privacy = privacy_for(settings, codec.registry)  # erased fields print as erased
    topics = [topic_name(settings, Topic(t)) for t in (args.topics or DEFAULT_TOPICS)]
    undecodable = 0
    async for rec in read_log(
        settings.kafka_bootstrap,
        codec,
        topics,
        from_beginning=args.from_beginning or args.since is not None,
        follow=not args.no_follow,
    ):
        if args.types and rec.event_type not in args.types:
            continue
        if rec.event is None:
            undecodable += 1
            where = f"{rec.topic}:{rec.partition}:{rec.offset}"
            print(f"tail: {where} cannot be decoded: {rec.error}", file=sys.stderr, flush=True)
            continue
        if not _wanted(rec.event, args):
            continue
        event = await _opened(privacy, rec.event)
        print(format_event(event, rec.topic, rec.partition, rec.offset, args.json), flush=True)
    if undecodable:
        print(f"tail: {undecodable} record(s) could not be decoded", file=sys.stderr)
    await privacy.close()


async def _opened(privacy: Privacy, event: Event) -> Event:
    """``event`` with its personal fields opened; as the log holds them (sealed) when the
    key store cannot be reached, so tail still shows the log."""
    import asyncpg

    try:
        return await privacy.open_one(event)
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"tail: personal fields stay sealed: {exc!r}", file=sys.stderr, flush=True)
        return event


def _wanted(event: Any, args: argparse.Namespace) -> bool:
    env = event.envelope
    return (
        (args.run is None or env.run_id == args.run)
        and (args.tenant is None or env.tenant_id == args.tenant)
        and (args.since is None or env.occurred_at >= args.since)
        and (args.until is None or env.occurred_at < args.until)
    )
