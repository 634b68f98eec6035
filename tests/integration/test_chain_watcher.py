"""The chain watcher against the stack's Hardhat node, Kafka and Postgres.

- a reorg (Hardhat's ``evm_snapshot`` / ``evm_revert``, then another block at that
  height) is found by the block hashes and the lost mint is retracted by its own event;
- confirmations: nothing is appended until enough blocks are on top;
- the real process, killed with SIGKILL while the chain moves on, resumes from its
  stored block on restart: every change once, nothing missed, nothing twice;
- a crash after an append but before the store: the restarted watcher reads the ids the
  log took since its last store and appends nothing twice;
- a transaction mined again in another block after a reorg (same id) counts again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from eth_account import Account
from prometheus_client import REGISTRY
from web3 import Web3
from web3.types import TxParams

from contracts.deployment import connect
from contracts.logs import Web3Chain
from contracts.membership import MembershipContract
from domain.entitlements import fold
from domain.events import MembershipChanged
from domain.membership_watch import Watch
from infra import chain_service
from infra.launch import omnihub_argv, spawn
from infra.stack import StackConfig
from omnihub import REPO_ROOT
from omnihub.settings import Settings
from projections.chain_watcher import ChainWatcher, PgWatchStore, WatchConfig, watcher_name
from projections.migrate import apply_migrations
from streams.admin import ensure_declared_topics
from streams.codec import EventCodec
from streams.log_reader import read_log
from streams.producer import KafkaEventAppender
from streams.recent_ids import event_ids_since
from streams.schema_registry import SchemaRegistry
from streams.topics import topic_for

DAY = 86400
CODEC = EventCodec(SchemaRegistry.from_dir(REPO_ROOT / "schemas"))


@pytest.fixture
def w3(stack: StackConfig) -> Iterator[Web3]:
    yield connect(chain_service.rpc_url(stack))


@pytest.fixture
def settings() -> Settings:
    tag = "cw" + uuid.uuid4().hex[:10]
    return Settings(topic_prefix=tag, projections_schema=tag, topic_partitions=3)


def now(w3: Web3) -> int:
    return int(w3.eth.get_block("latest")["timestamp"])


def rpc(w3: Web3, method: str, *params: object) -> object:
    return w3.provider.make_request(method, list(params))["result"]  # type: ignore[arg-type]


def wait_head(w3: Web3, at_least: int, timeout_s: float = 20) -> None:
    """Until the chain's head reaches ``at_least`` (the node mines one block a second)."""
    deadline = time.monotonic() + timeout_s
    while w3.eth.block_number < at_least:
        assert time.monotonic() < deadline, f"head stayed below {at_least}"
        time.sleep(0.2)


async def logged(settings: Settings) -> list[MembershipChanged]:
    topic = topic_for(settings, "membership_changed")
    out = []
    async for rec in read_log(settings.kafka_bootstrap, CODEC, [topic]):
        if isinstance(rec.event, MembershipChanged):
            out.append(rec.event)
    return out  # log order per token (one key, one partition)


def retractions_counted() -> float:
    sample = REGISTRY.get_sample_value(
        "omnihub_chain_membership_changes_total", {"change": "retracted"}
    )
    return sample or 0.0


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(
        settings.postgres_dsn, server_settings={"search_path": settings.projections_schema}
    )
    await apply_migrations(pool, schema=settings.projections_schema)
    await ensure_declared_topics(settings)
    yield pool
    await pool.close()


async def test_a_reorged_mint_is_retracted_by_its_own_event(
    w3: Web3, settings: Settings, pool: asyncpg.Pool
) -> None:
    owner, alice, bob = w3.eth.accounts[:3]
    membership, receipt = MembershipContract.deploy(w3, owner)
    appender = KafkaEventAppender(settings, CODEC)
    config = WatchConfig(from_block=receipt["blockNumber"], confirmations=2)
    watcher = ChainWatcher(
        Web3Chain(membership), membership.address, appender, PgWatchStore(pool), config
    )
    try:
        await watcher.resume()
        snapshot = rpc(w3, "evm_snapshot")
        expiry = now(w3) + DAY
        await asyncio.to_thread(membership.mint, alice, "enterprise", expiry, owner)
        minted_at = w3.eth.block_number
        assert await watcher.step() == 0  # not confirmed yet: nothing appended
        await asyncio.to_thread(wait_head, w3, minted_at + 2)
        assert await watcher.step() == 1
        (minted,) = await logged(settings)
        assert (minted.change, minted.holder, minted.tier) == ("minted", alice, "enterprise")

        assert rpc(w3, "evm_revert", snapshot) is True  # the mint's block is gone
        await asyncio.to_thread(membership.mint, bob, "starter", expiry, owner)
        await asyncio.to_thread(wait_head, w3, w3.eth.block_number + 2)
        retracted_before = retractions_counted()
        assert await watcher.step() == 2  # the retraction, then bob's mint
        assert retractions_counted() == retracted_before + 1
    finally:
        await appender.stop()
    minted_alice, retracted, minted_bob = await logged(settings)
    assert minted_alice == minted
    assert (retracted.change, retracted.retracts, retracted.holder) == (
        "retracted",
        minted.envelope.event_id,
        "",
    )
    assert (minted_bob.change, minted_bob.holder, minted_bob.tier) == ("minted", bob, "starter")
    # The fold ends with bob holding token 1: alice's reorged-out mint counts for nobody.
    state = fold("*", [minted_alice, retracted, minted_bob])
    token = state.tokens[f"{w3.eth.chain_id}:{membership.address.lower()}:1"]
    assert (token.holder, token.tier) == (bob.lower(), "starter")


def start_process(
    settings: Settings, stack: StackConfig, extra: dict[str, str], log: Path
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        **stack.client_env(),
        "OMNIHUB_TOPIC_PREFIX": settings.topic_prefix,
        "OMNIHUB_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "OMNIHUB_PROJECTIONS_SCHEMA": settings.projections_schema,
        "OMNIHUB_CHAIN_CONFIRMATIONS": "1",
        "OMNIHUB_CHAIN_POLL_S": "0.2",
        "OMNIHUB_METRICS_PORT": "0",
        **extra,
    }
    return spawn(omnihub_argv("chain-watcher", "run"), env, log)


async def wait_logged(
    settings: Settings, count: int, timeout_s: float = 60
) -> list[MembershipChanged]:
    deadline = time.monotonic() + timeout_s
    while len(events := await logged(settings)) < count:
        assert time.monotonic() < deadline, f"{len(events)} of {count} events logged"
        await asyncio.sleep(0.5)
    return events


async def test_the_process_resumes_from_its_stored_block_after_sigkill(
    w3: Web3, settings: Settings, pool: asyncpg.Pool, stack: StackConfig, tmp_path: Path
) -> None:
    owner, alice, bob = w3.eth.accounts[3:6]
    membership, receipt = MembershipContract.deploy(w3, w3.eth.accounts[0])
    membership.grant_minter(owner, w3.eth.accounts[0])
    extra = {
        "OMNIHUB_MEMBERSHIP_ADDRESS": membership.address,
        "OMNIHUB_MEMBERSHIP_FROM_BLOCK": str(receipt["blockNumber"]),
    }
    log = tmp_path / "chain-watcher.log"
    proc = start_process(settings, stack, extra, log)
    try:
        first = membership.mint(alice, "pro", now(w3) + DAY, owner)
        await wait_logged(settings, 1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        # The chain moves on while the watcher is down.
        second = membership.mint(bob, "starter", now(w3) + DAY, owner)
        membership.renew(first, now(w3) + 30 * DAY, owner)
        membership.transfer(first, bob, alice)
        proc = start_process(settings, stack, extra, log)
        events = await wait_logged(settings, 4)
        await asyncio.sleep(3)  # more polls: nothing more may come
        events = sorted(await logged(settings), key=lambda e: (e.block_number, e.log_index))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert [(e.token_id, e.change, e.holder) for e in events] == [
        (str(first), "minted", alice),
        (str(second), "minted", bob),
        (str(first), "renewed", alice),
        (str(first), "transferred", bob),
    ], [(e.token_id, e.change, e.block_number, e.envelope.event_id) for e in events]
    assert len({e.envelope.event_id for e in events}) == 4
    row = await pool.fetchrow(
        "SELECT next_block, updated_at FROM chain_watcher_state WHERE watcher = $1",
        watcher_name(w3.eth.chain_id, membership.address),
    )
    assert row is not None and row["next_block"] > receipt["blockNumber"]
    assert row["updated_at"] <= datetime.now(UTC)


class StoreThatDies(PgWatchStore):
    """Appends go through; the store after them fails, as a crash between the two would."""

    async def save(self, watcher: str, watch: Watch) -> None:
        raise ConnectionError("died before storing")


async def test_a_crash_between_append_and_store_appends_nothing_twice(
    w3: Web3, settings: Settings, pool: asyncpg.Pool
) -> None:
    owner, alice = w3.eth.accounts[:2]
    membership, receipt = MembershipContract.deploy(w3, owner)
    config = WatchConfig(from_block=receipt["blockNumber"], confirmations=1)
    appender = KafkaEventAppender(settings, CODEC)
    chain = Web3Chain(membership)

    async def appended_since(when: datetime) -> set[str]:
        since = int(when.timestamp() * 1000)
        topic = topic_for(settings, "membership_changed")
        return await event_ids_since(settings.kafka_bootstrap, topic, since, "membership_changed")

    try:
        first = ChainWatcher(chain, membership.address, appender, PgWatchStore(pool), config)
        await first.resume(appended_since)
        await asyncio.to_thread(wait_head, w3, receipt["blockNumber"] + 1)
        await first.step()  # stores a state with nothing appended yet
        await asyncio.to_thread(membership.mint, alice, "pro", now(w3) + DAY, owner)
        await asyncio.to_thread(wait_head, w3, w3.eth.block_number + 1)
        dying = ChainWatcher(chain, membership.address, appender, StoreThatDies(pool), config)
        await dying.resume(appended_since)
        with pytest.raises(ConnectionError):
            await dying.step()
        assert len(await logged(settings)) == 1  # appended, not stored

        # Both restart from the state stored before the mint; only one asks the log.
        again = ChainWatcher(chain, membership.address, appender, PgWatchStore(pool), config)
        await again.resume(appended_since)
        without_memory = ChainWatcher(
            chain, membership.address, appender, PgWatchStore(pool), config
        )
        await without_memory.resume()
        assert await again.step() == 0  # the same blocks, the same id: skipped
        assert len(await logged(settings)) == 1
        # The control: without the ids from the log, the mint would be appended twice.
        assert await without_memory.step() == 1
    finally:
        await appender.stop()


async def test_a_transaction_mined_again_after_a_reorg_counts_again(
    w3: Web3, settings: Settings, pool: asyncpg.Pool
) -> None:
    minter = Account.create()
    w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": minter.address, "value": 10**18})
    membership, receipt = MembershipContract.deploy(w3, minter)
    holder = w3.eth.accounts[7]
    call = membership.contract.functions.mint(holder, 2, now(w3) + DAY)
    params: TxParams = {
        "from": minter.address,
        "nonce": w3.eth.get_transaction_count(minter.address, "pending"),
    }
    raw = minter.sign_transaction(call.build_transaction(params)).raw_transaction
    appender = KafkaEventAppender(settings, CODEC)
    config = WatchConfig(from_block=receipt["blockNumber"], confirmations=1)
    watcher = ChainWatcher(
        Web3Chain(membership), membership.address, appender, PgWatchStore(pool), config
    )
    try:
        await watcher.resume()
        snapshot = rpc(w3, "evm_snapshot")
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))
        await asyncio.to_thread(wait_head, w3, w3.eth.block_number + 1)
        assert await watcher.step() == 1
        assert rpc(w3, "evm_revert", snapshot) is True
        await asyncio.to_thread(wait_head, w3, w3.eth.block_number + 1)  # another block there
        w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(raw))  # the same tx
        await asyncio.to_thread(wait_head, w3, w3.eth.block_number + 1)
        assert await watcher.step() == 2
    finally:
        await appender.stop()
    minted, retracted, again = await logged(settings)
    assert (retracted.change, retracted.retracts) == ("retracted", minted.envelope.event_id)
    assert (again.change, again.holder, again.tx_hash) == ("minted", holder, minted.tx_hash)
    assert again.block_hash != minted.block_hash
    # Same transaction and log index: the same id, and the fold ends with the token held.
    assert again.envelope.event_id == minted.envelope.event_id
    token = fold("*", [minted, retracted, again]).tokens
    assert [t.holder for t in token.values()] == [holder.lower()]
