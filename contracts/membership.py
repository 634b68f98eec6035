"""web3.py adapter of the ``OmniHubMembership`` contract: deploy, mint, renew, revoke, read.

Transactions are sent either from an account the node holds unlocked (an address: the
Hardhat node's dev accounts, eth-tester's) or signed here with a local key (a
``LocalAccount``: any other chain). A revert surfaces as :class:`MembershipRefused`
naming the contract's custom error (``NotOwnerNorMinter``, ``ExpiryNotExtended``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from eth_account.signers.local import LocalAccount
from eth_typing import ABIError
from eth_utils.abi import abi_to_signature, function_signature_to_4byte_selector
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.logs import DISCARD
from web3.types import TxParams, TxReceipt

from contracts.artifact import Artifact, load

Sender = str | LocalAccount
"""Who sends a transaction: an unlocked account's address, or a key that signs here."""

TIERS: tuple[str, ...] = ("none", "starter", "pro", "enterprise")
"""The contract's ``Tier`` enum, by value: 0 is no membership."""


class MembershipRefused(RuntimeError):
    """The contract reverted; ``error`` is its custom error's name when it has one."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error


@dataclass(frozen=True)
class Membership:
    """One token as the contract holds it now."""

    token_id: int
    holder: str
    tier: str
    expires_at: datetime
    active: bool


def tier_value(tier: str) -> int:
    """The contract's enum value of a paid tier name (starter, pro, enterprise)."""
    if tier not in TIERS[1:]:
        raise ValueError(f"not a membership tier: {tier!r}; one of {', '.join(TIERS[1:])}")
    return TIERS.index(tier)


class MembershipContract:
    """One deployed membership contract on the chain ``w3`` talks to."""

    def __init__(self, w3: Web3, address: str, artifact: Artifact | None = None) -> None:
        self.w3 = w3
        self.artifact = artifact or load()
        self.address = Web3.to_checksum_address(address)
        self.contract: Contract = w3.eth.contract(address=self.address, abi=self.artifact.abi)
        self._errors = _error_selectors(self.artifact.abi)

    @classmethod
    def deploy(
        cls, w3: Web3, sender: Sender, owner: str | None = None, artifact: Artifact | None = None
    ) -> tuple[MembershipContract, TxReceipt]:
        """Deploy a new contract owned by ``owner`` (default: the sender)."""
        artifact = artifact or load()
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        owner = owner or _address(sender)
        receipt = _send(w3, factory.constructor(Web3.to_checksum_address(owner)), sender)
        address = receipt["contractAddress"]
        if address is None:
            raise RuntimeError("deployment receipt has no contract address")
        return cls(w3, address, artifact), receipt

    def mint(self, to: str, tier: str, expires_at: int, sender: Sender) -> int:
        """Mint a ``tier`` membership to ``to`` until ``expires_at`` (unix s); its token id."""
        call = self.contract.functions.mint(
            Web3.to_checksum_address(to), tier_value(tier), expires_at
        )
        receipt = self._transact(call, sender)
        (minted,) = self.contract.events.MembershipMinted().process_receipt(receipt, errors=DISCARD)
        return int(minted["args"]["tokenId"])

    def renew(self, token_id: int, expires_at: int, sender: Sender) -> TxReceipt:
        """Move the token's expiry to ``expires_at`` (later than now and than before)."""
        return self._transact(self.contract.functions.renew(token_id, expires_at), sender)

    def revoke(self, token_id: int, sender: Sender) -> TxReceipt:
        """Burn the token: the membership ends now."""
        return self._transact(self.contract.functions.revoke(token_id), sender)

    def transfer(self, token_id: int, to: str, sender: Sender) -> TxReceipt:
        """ERC-721 ``transferFrom`` by the holder (or an approved account)."""
        holder = self.holder(token_id)
        if holder is None:
            raise MembershipRefused("ERC721NonexistentToken", f"token {token_id}")
        call = self.contract.functions.transferFrom(holder, Web3.to_checksum_address(to), token_id)
        return self._transact(call, sender)

    def grant_minter(self, account: str, sender: Sender) -> TxReceipt:
        """Give ``account`` MINTER_ROLE (the sender must administer the role)."""
        role = self.contract.functions.MINTER_ROLE().call()
        call = self.contract.functions.grantRole(role, Web3.to_checksum_address(account))
        return self._transact(call, sender)

    def holder(self, token_id: int) -> str | None:
        """The token's holder, or None once it was revoked (or never minted)."""
        try:
            return str(self.contract.functions.ownerOf(token_id).call())
        except ContractLogicError:
            return None

    def membership(self, token_id: int) -> Membership | None:
        """The token's tier, expiry and activity now, or None if it does not exist."""
        holder = self.holder(token_id)
        if holder is None:
            return None
        tier, expires_at, active = self.contract.functions.membershipOf(token_id).call()
        return Membership(
            token_id=token_id,
            holder=holder,
            tier=TIERS[tier],
            expires_at=datetime.fromtimestamp(expires_at, UTC),
            active=bool(active),
        )

    def _transact(self, call: Any, sender: Sender) -> TxReceipt:
        try:
            return _send(self.w3, call, sender)
        except ContractLogicError as exc:
            raise MembershipRefused(self._error_name(exc), str(exc)) from exc

    def _error_name(self, exc: ContractLogicError) -> str:
        # A node answers the revert data as a string, or as {"message", "data"} (Hardhat).
        data = exc.data.get("data", "") if isinstance(exc.data, dict) else exc.data or ""
        return self._errors.get(str(data)[:10].lower(), "reverted")


def _send(w3: Web3, call: Any, sender: Sender) -> TxReceipt:
    """Send ``call`` from ``sender`` and wait for its receipt; a failed one raises."""
    if isinstance(sender, str):
        tx_hash = call.transact({"from": Web3.to_checksum_address(sender)})
    else:
        params: TxParams = {
            "from": sender.address,
            "nonce": w3.eth.get_transaction_count(sender.address, "pending"),
        }
        signed = sender.sign_transaction(call.build_transaction(params))
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    if receipt["status"] != 1:
        raise MembershipRefused("reverted", f"transaction {tx_hash.hex()} failed")
    return receipt


def _address(sender: Sender) -> str:
    return sender if isinstance(sender, str) else str(sender.address)


def _error_selectors(abi: list[dict[str, Any]]) -> dict[str, str]:
    """``0x<4-byte selector>`` -> custom error name, for every error in the ABI."""
    return {
        "0x"
        + function_signature_to_4byte_selector(abi_to_signature(cast(ABIError, item))).hex(): item[
            "name"
        ]
        for item in abi
        if item.get("type") == "error"
    }
