"""The membership contract on the local chain: deployed once, recorded in the state folder.

``ensure_deployed`` is idempotent. It reuses the recorded deployment while the chain
still holds it: same chain id, same genesis block and the committed runtime code at the
recorded address. Otherwise (first start, or the Hardhat node was restarted and began a
fresh chain) it deploys again from the node's first dev account and rewrites the record.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from web3 import Web3

from contracts.artifact import Artifact, load
from contracts.membership import MembershipContract


@dataclass(frozen=True)
class Deployment:
    """Where the membership contract lives, and on which chain."""

    chain_id: int
    address: str
    genesis_hash: str  # block 0: a restarted Hardhat node has a new one
    block_number: int
    tx_hash: str
    owner: str

    def write(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a record."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> Deployment | None:
        """The record, or None when it is missing or unreadable."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def connect(rpc_url: str, timeout_s: float = 10.0) -> Web3:
    """A web3 client of the JSON-RPC node at ``rpc_url``."""
    return Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout_s}))


def is_current(w3: Web3, record: Deployment, artifact: Artifact) -> bool:
    """True while the chain ``w3`` talks to still holds the recorded deployment."""
    if w3.eth.chain_id != record.chain_id:
        return False
    if w3.eth.get_block(0)["hash"].to_0x_hex() != record.genesis_hash:
        return False
    code = w3.eth.get_code(Web3.to_checksum_address(record.address))
    return code.to_0x_hex() == artifact.deployed_bytecode


def ensure_deployed(rpc_url: str, record_path: Path) -> tuple[Deployment, bool]:
    """The current deployment, deploying first if needed; True when it deployed now."""
    artifact = load()
    w3 = connect(rpc_url)
    record = Deployment.read(record_path)
    if record is not None and is_current(w3, record, artifact):
        return record, False
    owner = w3.eth.accounts[0]  # the node's first unlocked dev account
    contract, receipt = MembershipContract.deploy(w3, owner, artifact=artifact)
    record = Deployment(
        chain_id=w3.eth.chain_id,
        address=contract.address,
        genesis_hash=w3.eth.get_block(0)["hash"].to_0x_hex(),
        block_number=receipt["blockNumber"],
        tx_hash=receipt["transactionHash"].to_0x_hex(),
        owner=owner,
    )
    record.write(record_path)
    return record, True


class NoContract(RuntimeError):
    """Neither an address nor a deployment record says which contract to use."""


def membership_target(
    record_path: Path, address: str | None = None, from_block: int | None = None
) -> tuple[str, int, Deployment | None]:
    """The contract to use (``address``, else the record's), the block its history
    starts at (``from_block``, else the record's deployment block, else 0) and the record."""
    record = Deployment.read(record_path)
    chosen = address or (record.address if record else None)
    if chosen is None:
        raise NoContract(
            "set OMNIHUB_MEMBERSHIP_ADDRESS, or deploy with `omnihub stack up` "
            f"(it writes {record_path})"
        )
    if from_block is None:
        from_block = record.block_number if record and record.address == chosen else 0
    return chosen, from_block, record
