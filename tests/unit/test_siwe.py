"""Sign-In with Ethereum: the parser and the checks, including a fuzz of the verifier."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from domain.siwe import (
    REASONS,
    Expectation,
    SiweMessage,
    SiweRefused,
    check,
    parse,
    recover_signer,
    render,
)

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
EXPECTED = Expectation(domain="omnihub.local:8000", uri="http://omnihub.local:8000", chain_id=31337)
ALICE = Account.from_key("0x" + "11" * 32)
MALLORY = Account.from_key("0x" + "22" * 32)


def message(**changes: object) -> SiweMessage:
    base = SiweMessage(
        domain=EXPECTED.domain,
        address=ALICE.address,
        statement="Link this wallet to your OmniHub tenant.",
        uri=EXPECTED.uri,
        chain_id=EXPECTED.chain_id,
        nonce="k2b9QhX7wPz4",
        issued_at=NOW - timedelta(seconds=5),
        expiration_time=NOW + timedelta(minutes=5),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def sign(text: str, account: object = ALICE) -> str:
    signed = Account.sign_message(encode_defunct(text=text), account.key)  # type: ignore[attr-defined]
    return "0x" + signed.signature.hex().removeprefix("0x")


def refusal(text: str, signature: str, now: datetime = NOW) -> str:
    with pytest.raises(SiweRefused) as refused:
        check(text, signature, EXPECTED, now)
    return str(refused.value.reason)


def test_a_valid_message_is_accepted() -> None:
    text = render(message())
    accepted = check(text, sign(text), EXPECTED, NOW)
    assert accepted == message()


def test_the_eip_4361_example_parses() -> None:
    text = (
        "https://example.com wants you to sign in with your Ethereum account:\n"
        "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2\n\n"
        "I accept the ExampleOrg Terms of Service: https://example.com/tos\n\n"
        "URI: https://example.com/login\nVersion: 1\nChain ID: 1\nNonce: 32891756\n"
        "Issued At: 2021-09-30T16:25:24Z\n"
        "Resources:\n- ipfs://bafybeiemxf5abjwjbikoz4mc3a3dla6ual3jsgpdr4cjr3oz3evfyavhwq/\n"
        "- https://example.com/my-web2-claim.json"
    )
    parsed = parse(text)
    assert (parsed.scheme, parsed.domain, parsed.chain_id) == ("https", "example.com", 1)
    assert parsed.issued_at == datetime(2021, 9, 30, 16, 25, 24, tzinfo=UTC)
    assert len(parsed.resources) == 2
    assert render(parsed) == text


def test_without_statement_and_with_every_optional_field() -> None:
    full = message(
        statement=None,
        not_before=NOW - timedelta(seconds=1),
        request_id="req-42",
        resources=("https://omnihub.local/tenant",),
    )
    text = render(full)
    assert "\n\n\nURI: " in text
    assert check(text, sign(text), EXPECTED, NOW) == full


def test_expired_message_is_refused() -> None:
    text = render(message())
    assert refusal(text, sign(text), now=NOW + timedelta(minutes=5)) == "expired"


def test_a_message_issued_long_ago_is_refused_even_without_expiry() -> None:
    text = render(message(expiration_time=None, issued_at=NOW - timedelta(minutes=6)))
    assert refusal(text, sign(text)) == "expired"


def test_not_before_and_future_issue_are_refused() -> None:
    later = render(message(not_before=NOW + timedelta(minutes=1)))
    assert refusal(later, sign(later)) == "not_yet_valid"
    future = render(message(issued_at=NOW + timedelta(minutes=2)))
    assert refusal(future, sign(future)) == "not_yet_valid"


def test_foreign_domain_uri_and_chain_are_refused() -> None:
    for changes, reason in (
        ({"domain": "evil.example"}, "foreign_domain"),
        ({"uri": "http://evil.example/login"}, "foreign_uri"),
        ({"chain_id": 1}, "wrong_chain"),
    ):
        text = render(message(**changes))
        assert refusal(text, sign(text)) == reason


def test_a_signature_by_another_address_is_refused() -> None:
    text = render(message())
    assert refusal(text, sign(text, MALLORY)) == "wrong_signer"
    # Mallory names Alice's address but can only sign with her own key.
    assert recover_signer(text, sign(text, MALLORY)) == MALLORY.address


def test_a_bad_signature_is_refused() -> None:
    text = render(message())
    assert refusal(text, "0x1234") == "bad_signature"
    assert refusal(text, "0x" + "00" * 65) == "bad_signature"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello",
        render(message()).replace("Version: 1", "Version: 2"),
        render(message()).replace(ALICE.address, ALICE.address.lower()),
        render(message()).replace("Nonce: k2b9QhX7wPz4", "Nonce: short"),
        render(message()).replace("Chain ID: 31337", "Chain ID: 0x7a69"),
        render(message()).replace("Z\n", "\n", 1),  # a time without a zone
        render(message()).replace("\n", "\r\n"),
        render(message()) + "\n",
        render(message()) + "\nResources:",
        render(message()).replace("URI: ", "URI:  "),
    ],
)
def test_malformed_messages_are_refused(text: str) -> None:
    assert refusal(text, sign(text)) == "malformed"


def test_refusal_reasons_are_a_closed_set() -> None:
    assert set(REASONS) == {
        "malformed",
        "bad_signature",
        "wrong_signer",
        "foreign_domain",
        "foreign_uri",
        "wrong_chain",
        "expired",
        "not_yet_valid",
        "nonce_unknown",
        "replayed",
    }


_VALID = render(message())
_VALID_SIGNATURE = sign(_VALID)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(text=st.text(max_size=600), signature=st.text(max_size=140))
def test_fuzz_arbitrary_input_is_only_ever_refused(text: str, signature: str) -> None:
    with pytest.raises(SiweRefused) as refused:
        check(text, signature, EXPECTED, NOW)
    assert refused.value.reason in REASONS


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_fuzz_no_mutation_of_a_signed_message_is_accepted(data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(_VALID)))
    end = data.draw(st.integers(start, min(len(_VALID), start + 8)))
    insert = data.draw(st.text(max_size=8))
    mutated = _VALID[:start] + insert + _VALID[end:]
    if mutated == _VALID:
        return
    with pytest.raises(SiweRefused) as refused:
        check(mutated, _VALID_SIGNATURE, EXPECTED, NOW)
    assert refused.value.reason in REASONS


_NONCE = st.text(
    "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789", min_size=8, max_size=32
)
_TIMES = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(lambda t: t.replace(microsecond=0))


@settings(max_examples=200, deadline=None)
@given(
    nonce=_NONCE,
    issued=_TIMES,
    chain=st.integers(1, 2**53),
    statement=st.none() | st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1),
)
def test_fuzz_every_rendered_message_parses_back(
    nonce: str, issued: datetime, chain: int, statement: str | None
) -> None:
    original = message(nonce=nonce, issued_at=issued, chain_id=chain, statement=statement)
    assert parse(render(original)) == original
