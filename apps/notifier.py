"""The notifier process: ``omnihub notifier run``, approval requests to the approvers.

One consumer (the ``notifier`` subscription) whose handler (:mod:`sagas.notify.handler`)
folds each tenant's channels into Redis and delivers every ``approval_requested`` to
them: signed webhooks, email over SMTP.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx
from redis.asyncio import Redis

from apps.runtime import serve
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections.keyring import privacy_for
from sagas.notify.channels import RedisChannels
from sagas.notify.handler import Notifier
from sagas.tools.url_policy import UrlPolicy
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.deadletter import KafkaDeadLetterWriter
from streams.follower import LogConsumer
from streams.producer import KafkaEventAppender
from streams.schema_registry import SchemaRegistry
from streams.topology import NOTIFIER


async def run_notifier(
    settings: Settings, stop: asyncio.Event, *, ready: asyncio.Event | None = None
) -> Notifier:
    """Notify until ``stop`` is set."""
    await ensure_declared_topics(settings)
    codec = EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=2)
    privacy = privacy_for(settings, codec.registry)
    appender = KafkaEventAppender(
        settings, codec, timeout_s=settings.append_timeout_s, privacy=privacy
    )
    letters = KafkaDeadLetterWriter(settings, "notifier")
    await appender.start()
    await letters.start()
    try:
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            channels = RedisChannels(redis, settings.topic_prefix)
            policy = UrlPolicy(settings.webhook_allowed_hosts)
            notifier = Notifier(settings, channels, appender, http, letters, policy)
            consumer = LogConsumer(settings, NOTIFIER, codec, [notifier], privacy=privacy)
            mark_ready()
            await consumer.run(stop, ready)
            return notifier
    finally:
        await letters.stop()
        await appender.stop()
        await privacy.close()
        await redis.aclose()


def register(sub: Any) -> None:
    """``omnihub notifier run``."""
    group = sub.add_parser("notifier", help="tell approvers of approval requests")
    cmds = group.add_subparsers(dest="action", required=True)
    cmds.add_parser("run", help="consume approval requests and deliver them").set_defaults(
        handler=_run
    )


def _run(args: argparse.Namespace) -> int:
    settings = get_settings()
    return serve(lambda stop: run_notifier(settings, stop), process="notifier")
