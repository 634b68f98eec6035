"""The notifier's handler for the one consumer: channel changes folded into Redis, and
each ``approval_requested`` delivered to every channel of its tenant, once.

At least once from Kafka (the group's committed offset is its position); exactly one
notification per approval and channel thanks to the claims (:mod:`.channels`). Every
delivery, or the giving up after the last retry, is recorded as ``approver_notified``;
a channel that never answered also gets a dead letter with the reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx
from redis.exceptions import RedisError

from domain import ids
from domain.events import (
    ApprovalRequested,
    ApproverNotified,
    NotificationChannelSet,
    SubjectErased,
)
from domain.notify import channel_secret, message
from omnihub.settings import Settings
from sagas.notify import senders
from sagas.notify.channels import RedisChannels
from sagas.tools.url_policy import UrlPolicy
from streams.consumer import Partition, Record
from streams.deadletter import DeadLetter, DeadLetterWriter
from streams.producer import EventAppender, LogUnavailable


@dataclass
class Notifier:
    """Handler ``notifier``: folds channels, delivers approval requests."""

    settings: Settings
    channels: RedisChannels
    appender: EventAppender
    http: httpx.AsyncClient
    deadletters: DeadLetterWriter | None = None
    # Targets are tenants' input: the http_call tool's guard against request forgery.
    policy: UrlPolicy = field(default_factory=UrlPolicy)
    name: str = "notifier"
    transient: tuple[type[BaseException], ...] = (RedisError, LogUnavailable)

    async def resume_at(self, partitions: Sequence[Partition]) -> Mapping[Partition, int] | None:
        return None  # at least once: the claims make a second delivery a no-op

    async def apply(self, topic: str, partition: int, records: Sequence[Record]) -> None:
        for record in records:
            event = record.event
            if isinstance(event, NotificationChannelSet):
                await self.channels.apply(event)
            elif isinstance(event, ApprovalRequested):
                await self.notify(event, (topic, partition, record.offset))
            elif isinstance(event, SubjectErased) and event.envelope.run_id.startswith("notify-"):
                await self.channels.forget(event.envelope.tenant_id)  # the key sealed them

    async def notify(self, event: ApprovalRequested, source: tuple[str, int, int]) -> None:
        """Deliver ``event`` to each of its tenant's channels not yet told of it."""
        base = self.settings.dashboard_url or (
            f"http://{self.settings.api_host}:{self.settings.api_port}"
        )
        msg = message(event, base)
        for channel in await self.channels.of(event.envelope.tenant_id):
            if not await self.channels.claim(event.approval_id, channel["channel_id"]):
                continue
            outcome = await senders.with_retries(
                lambda c=channel: self._send(c, msg),
                self.settings.notify_attempts,
                self.settings.notify_backoff_s,
            )
            await self._record(event, channel, outcome, source)

    async def _send(self, channel: dict[str, str], msg: dict[str, object]) -> None:
        s, kind, target = self.settings, channel["kind"], channel["target"]
        if kind in ("webhook", "webpush"):
            await self.policy.check(json.loads(target)["endpoint"] if kind == "webpush" else target)
        if kind == "webhook":
            secret = channel_secret(s.secret_key, channel["channel_id"])
            await senders.webhook(self.http, target, secret, msg)
        elif kind == "email":
            await senders.email(s.smtp_host, s.smtp_port, s.smtp_from, target, msg)
        elif kind == "webpush":
            if not s.vapid_private_key:
                raise ValueError("no VAPID key (OMNIHUB_VAPID_PRIVATE_KEY) to sign a push with")
            await senders.webpush(target, s.vapid_private_key, s.vapid_subject, msg)
        else:
            raise ValueError(f"no sender for channel kind {kind!r}")

    async def _record(
        self,
        event: ApprovalRequested,
        channel: dict[str, str],
        outcome: senders.Outcome,
        source: tuple[str, int, int],
    ) -> None:
        tenant = event.envelope.tenant_id
        result = "delivered" if outcome.delivered else "dead_lettered"
        notified = ApproverNotified(
            ids.envelope(
                ApproverNotified,
                run_id=f"notify-{tenant}",
                tenant_id=tenant,
                actor="system:notifier",
                correlation_id=event.envelope.correlation_id,
                causation_id=event.envelope.event_id,
                discriminator=(event.approval_id, channel["channel_id"]),
            ),
            event.approval_id,
            event.envelope.run_id,
            channel["channel_id"],
            channel["kind"],
            result,
            outcome.attempts,
            outcome.detail,
        )
        await self.appender.append(notified)
        if not outcome.delivered and self.deadletters is not None:
            topic, partition, offset = source
            await self.deadletters.send(
                DeadLetter(
                    topic,
                    partition,
                    offset,
                    f"notify_failed:{channel['kind']}",
                    outcome.detail,
                    event.envelope.run_id.encode(),
                    None,
                    [("tenant_id", tenant.encode()), ("event_type", b"approval_requested")],
                )
            )
