"""Wallet sign-in (EIP-4361): link a wallet to the caller's tenant.

``POST /auth/wallet/nonce`` issues a single-use nonce (Redis, 5 minutes) and says what
the message must name: domain, URI and chain id. The wallet signs the SIWE message
(``personal_sign``); ``POST /auth/wallet/verify`` checks it (signature, domain, URI,
chain, times) and consumes the nonce, then appends ``wallet_linked``. A refusal is
problem details naming the reason (``malformed``, ``replayed``, ``expired``, ...), with an
audit fact recorded before the answer. ``DELETE /auth/wallet/{address}`` appends
``wallet_unlinked``: the wallet's memberships stop counting for the tenant.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.audit import audit_fact
from api.security.deps import require, security_of
from api.security.principal import Principal
from api.security.wallet import RedisNonceStore, WalletSignIn
from domain import ids
from domain.events import WalletLinked, WalletUnlinked
from domain.siwe import Expectation, SiweMessage, SiweRefused
from omnihub.settings import Settings
from streams.producer import LogUnavailable

router = APIRouter(tags=["wallet"])

WalletLinker = Annotated[Principal, require("wallets:link")]
VERIFY = "POST /api/v1/auth/wallet/verify"
STATEMENT = "Link this wallet to your OmniHub tenant."
# Malformed input is the client's mistake (400); every other refusal is a failed proof.
STATUS = {"malformed": 400}


def expectation(settings: Settings) -> Expectation:
    """What a message must name to sign in to this API."""
    authority = f"{settings.api_host}:{settings.api_port}"
    return Expectation(
        domain=settings.siwe_domain or authority,
        uri=settings.siwe_uri or f"http://{authority}",
        chain_id=settings.chain_id,
    )


def _signin(state: AppState) -> WalletSignIn:
    nonces = RedisNonceStore(state.redis, ttl_s=state.settings.siwe_nonce_ttl_s)
    return WalletSignIn(nonces, expectation(state.settings))


class NonceOut(BaseModel):
    """A nonce, and what the message to sign must say."""

    nonce: str
    expires_at: datetime
    domain: str
    uri: str
    chain_id: int
    version: str = "1"
    statement: str = Field(default=STATEMENT, description="A suggested statement (optional).")


class VerifyIn(BaseModel):
    """The EIP-4361 message exactly as signed, and its ``personal_sign`` signature."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=4096)
    signature: str = Field(min_length=1, max_length=200)


class LinkedOut(BaseModel):
    """The wallet now linked to the tenant."""

    address: str
    chain_id: int
    tenant_id: str
    event_id: str


@router.post("/auth/wallet/nonce", response_model=NonceOut)
async def issue_nonce(p: WalletLinker, state: StateDep) -> Any:
    """Issue a single-use nonce for a Sign-In with Ethereum message (5 minutes)."""
    signin = _signin(state)
    now = datetime.now(UTC)
    try:
        nonce = await signin.nonces.issue(p.tenant_id)
    except RedisError as exc:
        raise Problem(503, "nonce-store-unavailable", "cannot issue a nonce now") from exc
    expected = signin.expected
    return NonceOut(
        nonce=nonce,
        expires_at=signin.expiry(now),
        domain=expected.domain,
        uri=expected.uri,
        chain_id=expected.chain_id,
    )


@router.post("/auth/wallet/verify", response_model=LinkedOut)
async def verify(body: VerifyIn, p: WalletLinker, state: StateDep) -> Any:
    """Check a signed SIWE message and link its wallet to the caller's tenant."""
    try:
        message = await _signin(state).verify(body.message, body.signature, p.tenant_id)
    except SiweRefused as refused:
        await _refuse(state, p, refused)
    except RedisError as exc:
        raise Problem(503, "nonce-store-unavailable", "cannot check the nonce now") from exc
    event = _linked(p, message)
    try:
        await state.appender.append(event)
    except LogUnavailable as exc:
        raise Problem(503, "log-unavailable", f"not linked: {exc}") from exc
    security_of(state).audit.record_later(
        audit_fact(
            p.tenant_id,
            "authn",
            "wallet.link",
            "success",
            subject=p.actor,
            resource=VERIFY,
            details={"address": message.address, "chain_id": str(message.chain_id)},
        )
    )
    return LinkedOut(
        address=message.address,
        chain_id=message.chain_id,
        tenant_id=p.tenant_id,
        event_id=event.envelope.event_id,
    )


class UnlinkedOut(BaseModel):
    """The wallet no longer linked to the tenant."""

    address: str
    tenant_id: str
    event_id: str


@router.delete("/auth/wallet/{address}", response_model=UnlinkedOut)
async def unlink(
    address: Annotated[str, Path(pattern=r"^0x[0-9a-fA-F]{40}$")],
    p: WalletLinker,
    state: StateDep,
    reason: str = "",
) -> Any:
    """Unlink a wallet from the caller's tenant: its memberships stop counting."""
    checksummed = to_checksum_address(address)
    event = WalletUnlinked(
        envelope=ids.envelope(
            WalletUnlinked,
            run_id=f"wallets-{p.tenant_id}",
            tenant_id=p.tenant_id,
            actor=p.actor,
            correlation_id=str(uuid.uuid4()),
            discriminator=(checksummed, str(uuid.uuid4())),
        ),
        address=checksummed,
        reason=reason[:500],
    )
    try:
        await state.appender.append(event)
    except LogUnavailable as exc:
        raise Problem(503, "log-unavailable", f"not unlinked: {exc}") from exc
    return UnlinkedOut(address=checksummed, tenant_id=p.tenant_id, event_id=event.envelope.event_id)


async def _refuse(state: AppState, p: Principal, refused: SiweRefused) -> NoReturn:
    """Record the refusal, then answer it as problem details (always raises)."""
    await security_of(state).audit.record(
        audit_fact(
            p.tenant_id,
            "authn",
            "wallet.link",
            "failure",
            subject=p.actor,
            resource=VERIFY,
            details={"reason": refused.reason},
        )
    )
    slug = "siwe-" + refused.reason.replace("_", "-")
    raise Problem(STATUS.get(refused.reason, 401), slug, refused.detail, reason=refused.reason)


def _linked(p: Principal, message: SiweMessage) -> WalletLinked:
    return WalletLinked(
        envelope=ids.envelope(
            WalletLinked,
            run_id=f"wallets-{p.tenant_id}",
            tenant_id=p.tenant_id,
            actor=p.actor,
            correlation_id=str(uuid.uuid4()),
            # One link per signed message: a retried append carries the same id.
            discriminator=(message.address, message.nonce),
        ),
        address=message.address,
        chain_id=message.chain_id,
        siwe_domain=message.domain,
        siwe_nonce=message.nonce,
        signed_at=message.issued_at,
    )
