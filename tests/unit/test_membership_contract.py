"""The membership contract on eth-tester's in-process chain (py-evm)."""

from __future__ import annotations

import ast
from typing import Any

import pytest
from eth_tester.exceptions import TransactionFailed
from web3 import EthereumTesterProvider, Web3
from web3.exceptions import ContractCustomError
from web3.types import RPCEndpoint, RPCResponse

from tests.membership_contract import Chain, MembershipContractTests

PREFIX = "execution reverted: "


class RevertingTesterProvider(EthereumTesterProvider):
    """eth-tester as a JSON-RPC node reports a revert: with its raw error data.

    web3's tester provider raises ``TransactionFailed`` with the data's repr in the text,
    where a node answers an error that web3 turns into ``ContractCustomError(data=...)``.
    """

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except TransactionFailed as exc:
            text = str(exc.args[0])
            raw = ast.literal_eval(text.removeprefix(PREFIX)) if text.startswith(PREFIX) else b""
            if isinstance(raw, bytes) and len(raw) >= 4:
                raise ContractCustomError(text, data="0x" + raw.hex()) from exc
            raise


class TestOnEthTester(MembershipContractTests):
    @pytest.fixture
    def chain(self) -> Chain:
        provider = RevertingTesterProvider()
        w3 = Web3(provider)

        def advance(seconds: int) -> None:
            tester = provider.ethereum_tester
            tester.time_travel(int(w3.eth.get_block("latest")["timestamp"]) + seconds)
            tester.mine_blocks(1)

        return Chain(w3, advance)
