"""``omnihub schemas|topics``: the contract and the topics from the command line; the event
formatting ``omnihub tail`` and the demo print."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any

from omnihub.settings import get_settings


def register(sub: Any) -> None:
    schemas = sub.add_parser("schemas", help="check or release the Avro contract")
    schemas_sub = schemas.add_subparsers(dest="action", required=True)
    schemas_sub.add_parser(
        "check", help="validate, frozen-check and compatibility-check every schema"
    ).set_defaults(handler=_schemas_check)
    schemas_sub.add_parser(
        "release", help="record new schema files as released (after they pass)"
    ).set_defaults(handler=_schemas_release)

    topics = sub.add_parser("topics", help="create the declared topics (idempotent)")
    topics.set_defaults(handler=_topics_ensure)


def _schemas_check(_: argparse.Namespace) -> int:
    from streams.schema_check import check_folder

    problems = check_folder(get_settings().schemas_dir)
    for p in problems:
        print(f"schema check: {p}", file=sys.stderr)
    if not problems:
        print("schemas: every version is valid, frozen where released and fully compatible")
    return 1 if problems else 0


def _schemas_release(_: argparse.Namespace) -> int:
    from streams.schema_check import release
    from streams.schema_registry import SchemaError

    try:
        added = release(get_settings().schemas_dir)
    except SchemaError as exc:
        print(f"not released:\n{exc}", file=sys.stderr)
        return 1
    print("released: " + (", ".join(added) if added else "nothing new"))
    return 0


def _topics_ensure(_: argparse.Namespace) -> int:
    from streams.admin import ensure_declared_topics

    mismatches = asyncio.run(ensure_declared_topics(get_settings()))
    for line in mismatches:
        print(f"mismatch: {line}", file=sys.stderr)
    print("topics: ready" + (" (with mismatches)" if mismatches else ""))
    return 1 if mismatches else 0


def format_event(event: Any, topic: str, partition: int, offset: int, as_json: bool) -> str:
    data = asdict(event)
    env = data.pop("envelope")
    if as_json:
        return json.dumps(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "envelope": env,
                "payload": data,
            },
            default=_json_default,
        )
    when = env["occurred_at"].strftime("%H:%M:%S.%f")[:-3]
    body = json.dumps(data, default=_json_default, ensure_ascii=False)
    if len(body) > 160:
        body = body[:157] + "..."
    return (
        f"{when} {env['event_type']:<24} run={env['run_id']} tenant={env['tenant_id']} "
        f"[{partition}@{offset}] {body}"
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (tuple, set)):
        return list(value)
    return str(value)
