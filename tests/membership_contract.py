"""The membership contract's behaviour, as one test class run on every chain we use.

A subclass provides ``chain`` (a :class:`Chain`): eth-tester in process for the unit
tests, the stack's Hardhat node for the integration tests. Every test deploys its own
contract, so tests never share tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from web3 import Web3
from web3.logs import DISCARD

from contracts.membership import MembershipContract, MembershipRefused

DAY = 24 * 3600


@dataclass
class Chain:
    """A web3 client with unlocked accounts, and a way to move the chain's clock."""

    w3: Web3
    advance: Callable[[int], None]  # move block time forward by N seconds and mine

    def now(self) -> int:
        """The latest block's timestamp."""
        return int(self.w3.eth.get_block("latest")["timestamp"])


class MembershipContractTests:
    """Deploy, mint, transfer, renew, expire, revoke, and who may do what."""

    @pytest.fixture
    def chain(self) -> Chain:
        raise NotImplementedError

    @pytest.fixture
    def deployed(self, chain: Chain) -> MembershipContract:
        contract, receipt = MembershipContract.deploy(chain.w3, chain.w3.eth.accounts[0])
        assert receipt["status"] == 1
        return contract

    def test_deploy_runs_the_committed_runtime_code(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        code = chain.w3.eth.get_code(deployed.address)
        assert code.to_0x_hex() == deployed.artifact.deployed_bytecode
        assert deployed.contract.functions.owner().call() == chain.w3.eth.accounts[0]

    def test_mint_gives_the_holder_an_active_tier(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        owner, alice = chain.w3.eth.accounts[:2]
        expires = chain.now() + 30 * DAY
        token = deployed.mint(alice, "pro", expires, owner)
        membership = deployed.membership(token)
        assert membership is not None
        assert (membership.holder, membership.tier, membership.active) == (alice, "pro", True)
        assert int(membership.expires_at.timestamp()) == expires
        assert deployed.contract.functions.balanceOf(alice).call() == 1

    def test_mint_emits_minted_and_transfer(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        owner, alice = chain.w3.eth.accounts[:2]
        token = deployed.mint(alice, "starter", chain.now() + DAY, owner)
        logs = deployed.contract.events.Transfer().get_logs(from_block=0)
        assert [(e["args"]["to"], e["args"]["tokenId"]) for e in logs] == [(alice, token)]
        minted = deployed.contract.events.MembershipMinted().get_logs(from_block=0)
        assert [(e["args"]["holder"], e["args"]["tier"]) for e in minted] == [(alice, 1)]

    def test_transfer_moves_the_membership_with_its_tier(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        owner, alice, bob = chain.w3.eth.accounts[:3]
        token = deployed.mint(alice, "enterprise", chain.now() + DAY, owner)
        deployed.transfer(token, bob, alice)
        membership = deployed.membership(token)
        assert membership is not None
        assert (membership.holder, membership.tier) == (bob, "enterprise")

    def test_only_the_holder_can_transfer(self, chain: Chain, deployed: MembershipContract) -> None:
        owner, alice, bob = chain.w3.eth.accounts[:3]
        token = deployed.mint(alice, "pro", chain.now() + DAY, owner)
        with pytest.raises(MembershipRefused) as refused:
            deployed.transfer(token, bob, bob)
        assert refused.value.error == "ERC721InsufficientApproval"

    def test_membership_expires_and_renewal_revives_it(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        owner, alice = chain.w3.eth.accounts[:2]
        token = deployed.mint(alice, "pro", chain.now() + DAY, owner)
        chain.advance(DAY + 60)
        assert deployed.contract.functions.isActive(token).call() is False
        membership = deployed.membership(token)
        assert membership is not None and membership.active is False
        receipt = deployed.renew(token, chain.now() + 30 * DAY, owner)
        renewed = deployed.contract.events.MembershipRenewed().process_receipt(
            receipt, errors=DISCARD
        )
        assert renewed[0]["args"]["holder"] == alice
        assert deployed.contract.functions.isActive(token).call() is True

    def test_renew_must_extend(self, chain: Chain, deployed: MembershipContract) -> None:
        owner, alice = chain.w3.eth.accounts[:2]
        expires = chain.now() + 10 * DAY
        token = deployed.mint(alice, "pro", expires, owner)
        with pytest.raises(MembershipRefused) as refused:
            deployed.renew(token, expires - DAY, owner)
        assert refused.value.error == "ExpiryNotExtended"

    def test_revoke_burns_the_token(self, chain: Chain, deployed: MembershipContract) -> None:
        owner, alice = chain.w3.eth.accounts[:2]
        token = deployed.mint(alice, "pro", chain.now() + DAY, owner)
        receipt = deployed.revoke(token, owner)
        revoked = deployed.contract.events.MembershipRevoked().process_receipt(
            receipt, errors=DISCARD
        )
        assert (revoked[0]["args"]["holder"], revoked[0]["args"]["tier"]) == (alice, 2)
        assert deployed.membership(token) is None
        assert deployed.contract.functions.isActive(token).call() is False

    def test_a_stranger_cannot_mint_renew_or_revoke(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        owner, alice, mallory = chain.w3.eth.accounts[:3]
        token = deployed.mint(alice, "starter", chain.now() + DAY, owner)
        attempts: list[Callable[[], object]] = [
            lambda: deployed.mint(mallory, "enterprise", chain.now() + DAY, mallory),
            lambda: deployed.renew(token, chain.now() + 9 * DAY, mallory),
            lambda: deployed.revoke(token, mallory),
        ]
        for attempt in attempts:
            with pytest.raises(MembershipRefused) as refused:
                attempt()
            assert refused.value.error == "NotOwnerNorMinter"
        assert deployed.contract.functions.balanceOf(mallory).call() == 0

    def test_a_minter_may_mint_once_granted(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        owner, minter, alice = chain.w3.eth.accounts[:3]
        with pytest.raises(MembershipRefused):
            deployed.mint(alice, "pro", chain.now() + DAY, minter)
        deployed.grant_minter(minter, owner)
        token = deployed.mint(alice, "pro", chain.now() + DAY, minter)
        assert deployed.holder(token) == alice

    def test_mint_refuses_no_tier_and_past_expiry(
        self, chain: Chain, deployed: MembershipContract
    ) -> None:
        owner, alice = chain.w3.eth.accounts[:2]
        with pytest.raises(MembershipRefused) as refused:
            deployed.mint(alice, "pro", chain.now() - 1, owner)
        assert refused.value.error == "ExpiryNotInFuture"
        with pytest.raises(ValueError):
            deployed.mint(alice, "free", chain.now() + DAY, owner)
