"""The membership contract on the stack's Hardhat node, and the stack's own deployment."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from contracts.artifact import load
from contracts.deployment import Deployment, connect, ensure_deployed, is_current
from contracts.membership import MembershipContract, MembershipRefused
from infra import chain_service
from infra.launch import omnihub_argv
from infra.stack import StackConfig, down, up
from omnihub import REPO_ROOT
from tests.membership_contract import Chain, MembershipContractTests


@pytest.fixture
def hardhat(stack: StackConfig) -> Web3:
    w3 = connect(chain_service.rpc_url(stack))
    assert w3.eth.chain_id == chain_service.CHAIN_ID
    return w3


class TestOnHardhat(MembershipContractTests):
    @pytest.fixture
    def chain(self, hardhat: Web3) -> Chain:
        def advance(seconds: int) -> None:
            hardhat.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
            hardhat.provider.make_request("evm_mine", [])  # type: ignore[arg-type]

        return Chain(hardhat, advance)


def test_the_stack_deployed_the_committed_contract(stack: StackConfig, hardhat: Web3) -> None:
    record = Deployment.read(chain_service.record_path(stack))
    assert record is not None
    assert is_current(hardhat, record, load())
    env = chain_service.deployment_env(stack)
    assert env["OMNIHUB_MEMBERSHIP_ADDRESS"] == record.address


def test_deploying_again_reuses_a_current_deployment(stack: StackConfig, tmp_path: Path) -> None:
    path = tmp_path / "membership.json"
    first, deployed = ensure_deployed(chain_service.rpc_url(stack), path)
    assert deployed
    again, deployed_again = ensure_deployed(chain_service.rpc_url(stack), path)
    assert (again, deployed_again) == (first, False)


def test_a_reset_chain_gets_a_new_deployment(stack: StackConfig, tmp_path: Path) -> None:
    path = tmp_path / "membership.json"
    first, _ = ensure_deployed(chain_service.rpc_url(stack), path)
    # What a restarted node looks like: the recorded genesis is not this chain's.
    Deployment(**{**first.__dict__, "genesis_hash": "0x" + "00" * 32}).write(path)
    second, deployed = ensure_deployed(chain_service.rpc_url(stack), path)
    assert deployed and second.genesis_hash == first.genesis_hash


def test_a_restarted_node_is_a_new_chain_and_gets_the_contract_again(stack: StackConfig) -> None:
    # A chain of its own (only the chain service, its own state and port), so the shared
    # test stack's node is never restarted under other tests.
    offset = stack.chain_port - StackConfig().chain_port + 17
    cfg = StackConfig().with_offset(offset, stack.state_dir.parent / f"test-chain-{offset}")
    try:
        up(cfg, ["chain"])
        first = Deployment.read(chain_service.record_path(cfg))
        down(cfg, ["chain"])
        assert chain_service.chain_id_of(chain_service.rpc_url(cfg)) is None
        up(cfg, ["chain"])
        second = Deployment.read(chain_service.record_path(cfg))
        assert first is not None and second is not None
        # Hardhat's genesis can repeat across restarts (its time is in seconds): what must
        # hold is that the new chain, empty again, has the contract at the recorded address.
        assert is_current(connect(chain_service.rpc_url(cfg)), second, load())
    finally:
        down(cfg, ["chain"])


def test_stack_env_exports_the_chain_and_the_contract(stack: StackConfig) -> None:
    env = {
        **os.environ,
        "OMNIHUB_STATE_DIR": str(stack.state_dir),
        "OMNIHUB_STACK_PORT_OFFSET": str(stack.chain_port - StackConfig().chain_port),
    }
    done = subprocess.run(
        omnihub_argv("stack", "env"),
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    exported = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines())
    assert exported["OMNIHUB_CHAIN_RPC_URL"] == chain_service.rpc_url(stack)
    assert (
        exported["OMNIHUB_MEMBERSHIP_ADDRESS"]
        == chain_service.deployment_env(stack)["OMNIHUB_MEMBERSHIP_ADDRESS"]
    )


def test_a_locally_signed_key_deploys_and_mints(hardhat: Web3) -> None:
    # Hardhat's dev account #3: its key is public, printed by every `hardhat node`.
    signer = Account.from_key("0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6")
    assert signer.address in hardhat.eth.accounts
    membership, receipt = MembershipContract.deploy(hardhat, signer)
    assert receipt["from"] == signer.address
    alice = hardhat.eth.accounts[4]
    expires = int(hardhat.eth.get_block("latest")["timestamp"]) + 3600
    token = membership.mint(alice, "starter", expires, signer)
    assert membership.holder(token) == alice
    with pytest.raises(MembershipRefused) as refused:
        membership.mint(alice, "pro", expires, Account.from_key("0x" + "66" * 32))
    assert refused.value.error == "NotOwnerNorMinter"
