"""The chain watcher process: ``omnihub chain-watcher run``, memberships from the chain.

It follows the membership contract (``OMNIHUB_MEMBERSHIP_ADDRESS``, or the stack's
deployment record ``<state>/chain/membership.json``) on ``OMNIHUB_CHAIN_RPC_URL`` and
appends ``membership_changed`` events (:mod:`projections.chain_watcher`); its state is
in Postgres (``chain_watcher_state``). It consumes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg

from apps.runtime import serve
from contracts.deployment import connect, membership_target
from contracts.logs import Web3Chain
from contracts.membership import MembershipContract
from omnihub.readiness import mark_ready
from omnihub.settings import Settings, get_settings
from projections.chain_watcher import ChainWatcher, PgWatchStore, WatchConfig
from projections.migrate import apply_migrations, quote_ident
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.producer import KafkaEventAppender
from streams.recent_ids import event_ids_since
from streams.schema_registry import SchemaRegistry
from streams.topics import topic_for


def record_path(settings: Settings) -> Path:
    """Where ``omnihub stack up`` (and compose's chain-deploy) record the contract."""
    return settings.state_dir / "chain" / "membership.json"


async def run_chain_watcher(
    settings: Settings, stop: asyncio.Event, *, poll_s: float | None = None
) -> ChainWatcher:
    """Follow the chain until ``stop`` is set."""
    await ensure_declared_topics(settings)
    address, from_block, _ = membership_target(
        record_path(settings), settings.membership_address, settings.membership_from_block
    )
    membership = MembershipContract(connect(settings.chain_rpc_url), address)
    chain = await asyncio.to_thread(Web3Chain, membership)
    path = f"{quote_ident(settings.projections_schema)}, public"
    pool: asyncpg.Pool = await asyncpg.create_pool(
        settings.postgres_dsn, min_size=1, max_size=2, server_settings={"search_path": path}
    )
    appender = KafkaEventAppender(
        settings, EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    )
    try:
        await apply_migrations(pool, schema=settings.projections_schema)
        await appender.start()
        config = WatchConfig(
            from_block=from_block,
            confirmations=settings.chain_confirmations,
            window=settings.chain_reorg_window,
            max_blocks=settings.chain_max_blocks,
        )
        watcher = ChainWatcher(chain, membership.address, appender, PgWatchStore(pool), config)

        async def appended_since(when: datetime) -> set[str]:
            topic = topic_for(settings, "membership_changed")
            since_ms = int(when.timestamp() * 1000)
            return await event_ids_since(
                settings.kafka_bootstrap, topic, since_ms, "membership_changed"
            )

        await watcher.resume(appended_since)
        mark_ready()
        await watcher.run(stop, settings.chain_poll_s if poll_s is None else poll_s)
        return watcher
    finally:
        await appender.stop()
        await pool.close()


def register(sub: Any) -> None:
    """``omnihub chain-watcher run``."""
    group = sub.add_parser("chain-watcher", help="membership_changed events from the chain")
    cmds = group.add_subparsers(dest="action", required=True)
    cmds.add_parser("run", help="follow the membership contract").set_defaults(handler=_run)


def _run(_: argparse.Namespace) -> int:
    settings = get_settings()
    return serve(lambda stop: run_chain_watcher(settings, stop), process="chain-watcher")
