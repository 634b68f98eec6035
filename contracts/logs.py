"""Reading the membership contract's logs and block hashes, for the chain watcher.

``read_logs`` decodes every membership event and ERC-721 ``Transfer`` of a block range,
in chain order (block, then log index), as :class:`domain.membership_log.ContractLog`;
``block_hashes`` answers the hashes the watcher compares to detect a reorg.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from web3 import Web3
from web3.exceptions import BlockNotFound

from contracts.membership import MembershipContract
from domain.membership_log import ContractLog

EVENTS = ("Transfer", "MembershipMinted", "MembershipRenewed", "MembershipRevoked")


def read_logs(membership: MembershipContract, from_block: int, to_block: int) -> list[ContractLog]:
    """Every membership log in ``[from_block, to_block]``, in chain order."""
    if to_block < from_block:
        return []
    raw: list[Any] = []
    for name in EVENTS:
        event = getattr(membership.contract.events, name)
        raw.extend(event.get_logs(from_block=from_block, to_block=to_block))
    raw.sort(key=lambda log: (log["blockNumber"], log["logIndex"]))
    times = _block_times(membership.w3, {log["blockNumber"] for log in raw})
    return [
        ContractLog(
            event=str(log["event"]),
            args=dict(log["args"]),
            block_number=int(log["blockNumber"]),
            block_hash=log["blockHash"].to_0x_hex(),
            block_time=times[log["blockNumber"]],
            tx_hash=log["transactionHash"].to_0x_hex(),
            log_index=int(log["logIndex"]),
        )
        for log in raw
    ]


def block_hashes(w3: Web3, numbers: Iterable[int]) -> dict[int, str]:
    """The chain's current hash of each block in ``numbers`` (absent: beyond the head)."""
    found = {}
    for number in numbers:
        try:
            found[number] = w3.eth.get_block(number)["hash"].to_0x_hex()
        except BlockNotFound:
            continue  # the chain is shorter now: that block is gone
    return found


def _block_times(w3: Web3, numbers: set[int]) -> dict[int, datetime]:
    return {n: datetime.fromtimestamp(int(w3.eth.get_block(n)["timestamp"]), UTC) for n in numbers}


class Web3Chain:
    """The chain as the watcher reads it: head, genesis, logs and hashes (blocking calls)."""

    def __init__(self, membership: MembershipContract) -> None:
        self.membership = membership
        self.chain_id = int(membership.w3.eth.chain_id)

    def head(self) -> int:
        """The latest block's number."""
        return int(self.membership.w3.eth.block_number)

    def genesis(self) -> str:
        """Block 0's hash: another one means another chain (a restarted dev node)."""
        return str(self.membership.w3.eth.get_block(0)["hash"].to_0x_hex())

    def logs(self, from_block: int, to_block: int) -> list[ContractLog]:
        """The contract's logs in ``[from_block, to_block]``, in chain order."""
        return read_logs(self.membership, from_block, to_block)

    def hashes(self, numbers: Iterable[int]) -> dict[int, str]:
        """The current hash of each block in ``numbers`` (absent: beyond the head)."""
        return block_hashes(self.membership.w3, numbers)
