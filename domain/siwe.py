"""Sign-In with Ethereum (EIP-4361): parse, render and check a signed message, purely.

:func:`parse` accepts only the EIP-4361 grammar, line by line; anything else is
``malformed``. :func:`check` then decides whether a parsed message, with its signature,
proves that its address signs in to *this* service now: domain, URI, chain id, times and
the signer (``personal_sign``, EIP-191). The nonce is the caller's last step: it must be
consumed atomically (single use) only once everything here has passed.

Every refusal is a :class:`SiweRefused` whose ``reason`` is one of :data:`REASONS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, get_args

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils.address import is_checksum_address

Reason = Literal[
    "malformed",  # not an EIP-4361 message, or a field out of its grammar
    "bad_signature",  # not a 65-byte signature, or nothing can be recovered from it
    "wrong_signer",  # signed by another address than the message names
    "foreign_domain",  # for another site
    "foreign_uri",  # for another resource than this service's
    "wrong_chain",  # for another chain id
    "expired",  # past its expiration time, or issued too long ago
    "not_yet_valid",  # before its not-before time, or issued in the future
    "nonce_unknown",  # never issued here, expired, or issued for another tenant
    "replayed",  # its nonce was already used
]
REASONS: tuple[Reason, ...] = get_args(Reason)

HEADER_SUFFIX = " wants you to sign in with your Ethereum account:"
MAX_MESSAGE_CHARS = 4096


class SiweRefused(ValueError):
    """A sign-in refused for ``reason``; ``detail`` says what exactly."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SiweMessage:
    """The fields of an EIP-4361 message."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: datetime
    version: str = "1"
    scheme: str | None = None
    statement: str | None = None
    expiration_time: datetime | None = None
    not_before: datetime | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Expectation:
    """What this service accepts: its own domain, URI and chain."""

    domain: str
    uri: str
    chain_id: int
    clock_skew: timedelta = timedelta(seconds=60)
    max_age: timedelta = timedelta(minutes=5)  # issued-at older than this: expired


_DOMAIN = re.compile(r"^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[\x21-\x7e]+$")
_NONCE = re.compile(r"^[A-Za-z0-9]{8,64}$")
_CHAIN_ID = re.compile(r"^[1-9][0-9]{0,17}$")
_DATETIME = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_REQUEST_ID = re.compile(r"^[\x21-\x7e]*$")  # pchar*: printable, no spaces
_STATEMENT = re.compile(r"^[^\n\r\x00-\x1f\x7f]+$")

_OPTIONAL_FIELDS = (
    ("Expiration Time: ", "expiration_time"),
    ("Not Before: ", "not_before"),
    ("Request ID: ", "request_id"),
)


def _malformed(detail: str) -> SiweRefused:
    return SiweRefused("malformed", detail)


def _match(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise _malformed(f"{what} is not valid: {value[:80]!r}")
    return value


def _datetime(value: str, what: str) -> datetime:
    _match(_DATETIME, value, what)
    text = value.replace("Z", "+00:00")
    # Python keeps microseconds: cut extra fraction digits the grammar allows.
    text = re.sub(r"(\.[0-9]{6})[0-9]+", r"\1", text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise _malformed(f"{what} is not a date-time: {value!r}") from None


def _field(lines: list[str], index: int, prefix: str) -> str:
    if index >= len(lines) or not lines[index].startswith(prefix):
        raise _malformed(f"line {index + 1} should start with {prefix.strip()!r}")
    return lines[index][len(prefix) :]


def _header(line: str) -> tuple[str | None, str]:
    if not line.endswith(HEADER_SUFFIX):
        raise _malformed("the first line is not an EIP-4361 header")
    authority = line[: -len(HEADER_SUFFIX)]
    scheme = None
    if "://" in authority:
        scheme, authority = authority.split("://", 1)
        _match(_SCHEME, scheme, "scheme")
    return scheme, _match(_DOMAIN, authority, "domain")


def _statement(lines: list[str]) -> tuple[str | None, int]:
    """The statement and the index of the ``URI:`` line."""
    if len(lines) < 4 or lines[2] != "":
        raise _malformed("the address must be followed by an empty line")
    if lines[3] == "":  # no statement: a second empty line
        return None, 4
    statement = _match(_STATEMENT, lines[3], "statement")
    if len(lines) < 5 or lines[4] != "":
        raise _malformed("the statement must be followed by an empty line")
    return statement, 5


def parse(text: str) -> SiweMessage:
    """The message in ``text``; raises ``SiweRefused("malformed")`` unless it is EIP-4361."""
    if not isinstance(text, str) or len(text) > MAX_MESSAGE_CHARS:
        raise _malformed(f"not a string of at most {MAX_MESSAGE_CHARS} characters")
    lines = text.split("\n")
    scheme, domain = _header(lines[0])
    address = _match(_ADDRESS, lines[1] if len(lines) > 1 else "", "address")
    if not is_checksum_address(address):
        raise _malformed("the address is not EIP-55 checksummed")
    statement, i = _statement(lines)
    uri = _match(_URI, _field(lines, i, "URI: "), "URI")
    version = _field(lines, i + 1, "Version: ")
    if version != "1":
        raise _malformed(f"version must be 1, not {version[:10]!r}")
    chain_id = int(_match(_CHAIN_ID, _field(lines, i + 2, "Chain ID: "), "chain id"))
    nonce = _match(_NONCE, _field(lines, i + 3, "Nonce: "), "nonce")
    issued_at = _datetime(_field(lines, i + 4, "Issued At: "), "issued-at")
    optional, i = _optional_fields(lines, i + 5)
    resources = _resources(lines, i)
    return SiweMessage(
        domain=domain,
        address=address,
        uri=uri,
        chain_id=chain_id,
        nonce=nonce,
        issued_at=issued_at,
        scheme=scheme,
        statement=statement,
        resources=resources,
        expiration_time=_optional_datetime(optional, "expiration_time"),
        not_before=_optional_datetime(optional, "not_before"),
        request_id=optional.get("request_id"),
    )


def _optional_fields(lines: list[str], i: int) -> tuple[dict[str, str], int]:
    found: dict[str, str] = {}
    for prefix, name in _OPTIONAL_FIELDS:
        if i < len(lines) and lines[i].startswith(prefix):
            found[name] = lines[i][len(prefix) :]
            i += 1
    if "request_id" in found:
        _match(_REQUEST_ID, found["request_id"], "request id")
    return found, i


def _optional_datetime(found: dict[str, str], name: str) -> datetime | None:
    return _datetime(found[name], name.replace("_", "-")) if name in found else None


def _resources(lines: list[str], i: int) -> tuple[str, ...]:
    if i == len(lines):
        return ()
    if lines[i] != "Resources:":
        raise _malformed(f"unexpected line {i + 1}: {lines[i][:80]!r}")
    if i + 1 == len(lines):
        raise _malformed("'Resources:' without any resource")
    resources = []
    for line in lines[i + 1 :]:
        if not line.startswith("- "):
            raise _malformed(f"a resource line must start with '- ': {line[:80]!r}")
        resources.append(_match(_URI, line[2:], "resource"))
    return tuple(resources)


def _stamp(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def render(message: SiweMessage) -> str:
    """The EIP-4361 text of ``message`` (what a wallet shows and signs)."""
    prefix = f"{message.scheme}://" if message.scheme else ""
    lines = [f"{prefix}{message.domain}{HEADER_SUFFIX}", message.address, ""]
    lines += [message.statement, ""] if message.statement is not None else [""]
    lines += [
        f"URI: {message.uri}",
        f"Version: {message.version}",
        f"Chain ID: {message.chain_id}",
        f"Nonce: {message.nonce}",
        f"Issued At: {_stamp(message.issued_at)}",
    ]
    if message.expiration_time is not None:
        lines.append(f"Expiration Time: {_stamp(message.expiration_time)}")
    if message.not_before is not None:
        lines.append(f"Not Before: {_stamp(message.not_before)}")
    if message.request_id is not None:
        lines.append(f"Request ID: {message.request_id}")
    if message.resources:
        lines += ["Resources:", *(f"- {r}" for r in message.resources)]
    return "\n".join(lines)


def recover_signer(text: str, signature: str) -> str:
    """The address that ``personal_sign``-ed ``text``; ``bad_signature`` if none can be."""
    raw = signature.removeprefix("0x")
    if not re.fullmatch(r"[0-9a-fA-F]{130}", raw):
        raise SiweRefused("bad_signature", "a signature is 65 bytes of hex")
    try:
        return str(Account.recover_message(encode_defunct(text=text), signature=bytes.fromhex(raw)))
    except Exception as exc:  # eth-keys raises several types for an invalid point or v
        raise SiweRefused("bad_signature", f"no signer can be recovered: {exc}") from exc


def check(text: str, signature: str, expected: Expectation, now: datetime) -> SiweMessage:
    """The parsed message if it signs its address in to ``expected`` at ``now``.

    Raises :class:`SiweRefused`. The nonce is not checked here: consume it after this.
    """
    message = parse(text)
    if message.domain != expected.domain:
        raise SiweRefused("foreign_domain", f"for {message.domain!r}, not {expected.domain!r}")
    if message.uri != expected.uri:
        raise SiweRefused("foreign_uri", f"for {message.uri!r}, not {expected.uri!r}")
    if message.chain_id != expected.chain_id:
        raise SiweRefused("wrong_chain", f"chain {message.chain_id}, not {expected.chain_id}")
    _check_times(message, expected, now)
    signer = recover_signer(text, signature)
    if signer != message.address:
        raise SiweRefused("wrong_signer", f"signed by {signer}, not {message.address}")
    return message


def _check_times(message: SiweMessage, expected: Expectation, now: datetime) -> None:
    if message.expiration_time is not None and now >= message.expiration_time:
        raise SiweRefused("expired", f"expired at {_stamp(message.expiration_time)}")
    if now - message.issued_at > expected.max_age:
        raise SiweRefused("expired", f"issued at {_stamp(message.issued_at)}, too long ago")
    if message.issued_at - now > expected.clock_skew:
        raise SiweRefused("not_yet_valid", f"issued in the future: {_stamp(message.issued_at)}")
    if message.not_before is not None and now < message.not_before:
        raise SiweRefused("not_yet_valid", f"not before {_stamp(message.not_before)}")
