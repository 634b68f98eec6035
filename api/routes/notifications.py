"""Where a tenant's approvers are notified: channels set through the log, read from the
notifier's Redis view (``sagas.notify.channels``)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field, model_validator
from redis.exceptions import RedisError

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.deps import require
from api.security.principal import Principal
from domain import ids
from domain.events import NotificationChannelSet
from domain.notify import channel_secret
from sagas.notify.channels import RedisChannels
from sagas.notify.senders import vapid_public_key

router = APIRouter(tags=["notifications"])
Reader = Annotated[Principal, require("approvals:read")]
Admin = Annotated[Principal, require("admin")]


class ChannelIn(BaseModel):
    """A channel to tell approvers through."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["webhook", "email", "webpush"]
    target: str = Field(
        min_length=3,
        max_length=4000,
        description="A URL, an address, or a browser's push subscription as JSON.",
    )

    @model_validator(mode="after")
    def _target_fits_kind(self) -> ChannelIn:
        if self.kind == "webhook" and not self.target.startswith(("https://", "http://")):
            raise ValueError("a webhook's target is an http(s) URL")
        if self.kind == "email" and ("@" not in self.target or " " in self.target):
            raise ValueError("an email channel's target is an address")
        if self.kind == "webpush" and not _is_subscription(self.target):
            raise ValueError("a webpush target is a PushSubscription's JSON")
        return self


def _is_subscription(text: str) -> bool:
    try:
        sub = json.loads(text)
        keys = sub["keys"]
        endpoint = str(sub["endpoint"])
        return endpoint.startswith(("https://", "http://")) and bool(
            keys["p256dh"] and keys["auth"]
        )
    except (ValueError, KeyError, TypeError):
        return False


def _channels(state: AppState) -> RedisChannels:
    return RedisChannels(state.redis, state.settings.topic_prefix)


@router.get("/notifications/channels")
async def list_channels(state: StateDep, p: Reader) -> dict[str, Any]:
    """The tenant's notification channels."""
    try:
        return {"items": await _channels(state).of(p.tenant_id)}
    except (RedisError, OSError) as exc:
        raise Problem(503, "projections-unavailable", f"channels unavailable: {exc}") from exc


@router.get("/notifications/vapid")
async def vapid_key(state: StateDep, p: Reader) -> dict[str, Any]:
    """The key a browser subscribes to Web Push with (``applicationServerKey``)."""
    pem = state.settings.vapid_private_key
    if not pem:
        raise Problem(404, "webpush-not-configured", "OMNIHUB_VAPID_PRIVATE_KEY is not set")
    return {"public_key": vapid_public_key(pem)}


@router.post("/notifications/channels", status_code=status.HTTP_201_CREATED)
async def add_channel(body: ChannelIn, state: StateDep, p: Admin) -> dict[str, Any]:
    """Add a channel; a webhook's signing secret is in the answer (derived, never stored)."""
    channel_id = ids.event_id(p.tenant_id, "notification-channel", body.kind, body.target)
    await _append(state, p, channel_id, body.kind, body.target, removed=False)
    await _until(state, p.tenant_id, channel_id, present=True)
    out: dict[str, Any] = {"channel_id": channel_id, "kind": body.kind, "target": body.target}
    if body.kind == "webhook":
        out["secret"] = channel_secret(state.settings.secret_key, channel_id)
    return out


@router.delete("/notifications/channels/{channel_id}")
async def remove_channel(channel_id: str, state: StateDep, p: Admin) -> dict[str, Any]:
    """Take a channel away."""
    found = [c for c in await _channels(state).of(p.tenant_id) if c["channel_id"] == channel_id]
    if not found:
        raise Problem(404, "channel-not-found", f"no channel {channel_id} for this tenant")
    await _append(state, p, channel_id, found[0]["kind"], found[0]["target"], removed=True)
    await _until(state, p.tenant_id, channel_id, present=False)
    return {"channel_id": channel_id, "removed": True}


async def _append(
    state: AppState, p: Principal, channel_id: str, kind: str, target: str, *, removed: bool
) -> None:
    stream = f"notify-{p.tenant_id}"
    # Each call is a new fact (set, removed, set again): the time tells them apart.
    env = ids.envelope(
        NotificationChannelSet,
        run_id=stream,
        tenant_id=p.tenant_id,
        actor=p.actor,
        correlation_id=channel_id,
        discriminator=(channel_id, "removed" if removed else "set", time.time_ns()),
    )
    # LogUnavailable: 503 with Retry-After, in api.problems, as for every append.
    await state.appender.append(NotificationChannelSet(env, channel_id, kind, target, removed))


async def _until(state: AppState, tenant_id: str, channel_id: str, *, present: bool) -> None:
    """Wait (briefly) until the notifier has applied the change, so a list shows it."""
    for _ in range(50):
        ids_now = {c["channel_id"] for c in await _channels(state).of(tenant_id)}
        if (channel_id in ids_now) == present:
            return
        await asyncio.sleep(0.1)
