"""What routes depend on, as ``Annotated`` aliases over the app's state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from redis.asyncio import Redis
from temporalio.client import Client as TemporalClient

from api.idempotency import IdempotencyStore
from api.security.services import SecurityServices
from omnihub.lazy import Lazy
from omnihub.settings import Settings
from projections.killswitch import CachedSwitches
from streams.codec import EventCodec
from streams.privacy import Privacy
from streams.producer import KafkaEventAppender


@dataclass
class AppState:
    """Everything the API process wires in at start (see ``apps.api.lifespan``)."""

    settings: Settings
    codec: EventCodec
    appender: KafkaEventAppender
    redis: Redis
    idempotency: IdempotencyStore
    postgres: Lazy[asyncpg.Pool]
    temporal: Lazy[TemporalClient]
    switches: CachedSwitches  # kill switches as routes check them (cached briefly)
    security: SecurityServices | None = None  # api/security: keys, limits, audit
    privacy: Privacy | None = None  # opens personal fields read from the log (the stream)


async def get_state(request: Request) -> AppState:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool, a thread
    # hop per request on the hottest path.
    state: AppState = request.app.state.omnihub
    return state


StateDep = Annotated[AppState, Depends(get_state)]
