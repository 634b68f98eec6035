"""The membership contract on the stack's Hardhat node, and the stack's own deployment."""

from __future__ import annotations

import pytest
from web3 import Web3

from contracts.artifact import load
from contracts.deployment import Deployment, connect, ensure_deployed, is_current
from infra import chain_service
from infra.stack import StackConfig
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


def test_deploying_again_reuses_a_current_deployment(stack: StackConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "membership.json"
    first, deployed = ensure_deployed(chain_service.rpc_url(stack), path)
    assert deployed
    again, deployed_again = ensure_deployed(chain_service.rpc_url(stack), path)
    assert (again, deployed_again) == (first, False)


def test_a_reset_chain_gets_a_new_deployment(stack: StackConfig, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "membership.json"
    first, _ = ensure_deployed(chain_service.rpc_url(stack), path)
    # What a restarted node looks like: the recorded genesis is not this chain's.
    Deployment(**{**first.__dict__, "genesis_hash": "0x" + "00" * 32}).write(path)
    second, deployed = ensure_deployed(chain_service.rpc_url(stack), path)
    assert deployed and second.genesis_hash == first.genesis_hash
