"""Signing in to the dashboard with a wallet (SIWE, EIP-4361), without an API key.

``POST /dashboard/signin/wallet/nonce`` issues a single-use nonce for sign-in (never
usable to link a wallet, nor the reverse: the nonce store keeps what each was issued
for). The page's script asks the browser's wallet (EIP-1193, ``window.ethereum``) for
its address, builds the message from the answer, has it signed (``personal_sign``) and
posts message and signature to ``POST /dashboard/signin/wallet``. That checks the
message exactly as linking does (signature, domain, URI, chain id, times, nonce used
once), then finds the tenant the wallet is linked to, and opens a session standing for
``wallet:<address>`` of that tenant with :data:`~api.security.wallet_sessions.WALLET_SCOPES`.

A wallet linked to several tenants must name one in the message's ``Resources``
(``urn:omnihub:tenant:<id>``): without it the answer is 409 ``wallet-ambiguous`` listing
them, and the page lets the user pick and sign again. Every refusal is problem details
with an audit fact recorded first (``authn``, ``wallet.signin``, ``failure``).

Both routes need no key, so each client address may call them
``OMNIHUB_WALLET_SIGNIN_PER_MINUTE`` times a minute (a Redis counter per address and
minute, shared by every API process): beyond, 429 ``signin-rate-limited``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, NoReturn

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError

from api.deps import AppState
from api.problems import Problem
from api.routes.wallet import STATUS, NonceOut, expectation
from api.security.audit import audit_fact
from api.security.deps import security_of
from api.security.principal import UNAUTHENTICATED_TENANT
from api.security.sessions import COOKIE, SessionStore
from api.security.wallet import RedisNonceStore, WalletSignIn
from api.security.wallet_sessions import WalletChoiceRefused, choose_tenant
from domain.siwe import SiweMessage, SiweRefused

router = APIRouter(prefix="/dashboard/signin/wallet", include_in_schema=False)

SIGNIN = "_signin"  # what sign-in nonces are issued for: never a tenant (those are alphanumeric)
STATEMENT = "Sign in to the OmniHub dashboard."
RESOURCE = "POST /dashboard/signin/wallet"
CHOICE_STATUS = {"ambiguous": 409}  # not_linked, not_linked_to_tenant: 403


class SignInIn(BaseModel):
    """The EIP-4361 message exactly as signed, its signature, and the page to go to."""

    model_config = ConfigDict(extra="forbid")

    message: str = Field(min_length=1, max_length=4096)
    signature: str = Field(min_length=1, max_length=200)
    next: str = Field(default="/dashboard/runs", max_length=2000)


class NonceIn(BaseModel):
    """The wallet's address as the browser's wallet gave it (often lower-case)."""

    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(default=None, pattern=r"^0x[0-9a-fA-F]{40}$")


class SignInNonceOut(NonceOut):
    """A sign-in nonce; and the address in EIP-55 form, which the message must use (a
    page has no Keccak-256 to write it itself)."""

    address: str | None = None


def safe_next(target: str | None) -> str:
    """``target`` if it is one of our own pages, else the runs page."""
    # Only our own pages: an open redirect would make the sign-in page a phishing tool.
    if target and target.startswith("/dashboard/") and not target.startswith("//"):
        return target
    return "/dashboard/runs"


def same_origin(request: Request) -> bool:
    """Whether the request's ``Origin`` (if any) is this site: login CSRF is refused."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"


def set_session_cookie(response: Response, request: Request, session_id: str, ttl_s: int) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, Secure when served over TLS."""
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=ttl_s,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def throttle(request: Request, state: AppState) -> None:
    """429 once this client address made ``wallet_signin_per_minute`` requests this minute."""
    minute = int(time.time() // 60)
    client = request.client.host if request.client else "unknown"
    key = f"omnihub:{state.settings.topic_prefix}:signin-rate:{client}:{minute}"
    try:
        count = int(await state.redis.incr(key))
        if count == 1:
            await state.redis.expire(key, 120)
    except RedisError as exc:
        raise Problem(503, "nonce-store-unavailable", "cannot count sign-ins now") from exc
    if count > state.settings.wallet_signin_per_minute:
        retry = str(60 - int(time.time()) % 60)
        raise Problem(
            429,
            "signin-rate-limited",
            "too many wallet sign-in requests from this address: wait a minute",
            headers={"Retry-After": retry},
        )


def _signin(state: AppState) -> WalletSignIn:
    nonces = RedisNonceStore(state.redis, ttl_s=state.settings.siwe_nonce_ttl_s)
    return WalletSignIn(nonces, expectation(state.settings))


def _sessions(state: AppState) -> SessionStore:
    sessions = security_of(state).sessions
    if sessions is None or sessions.wallets is None:
        raise Problem(503, "gateway-unavailable", "sessions are not configured")
    return sessions


@router.post("/nonce", response_model=SignInNonceOut)
async def signin_nonce(request: Request, body: NonceIn | None = None) -> Any:
    """A single-use nonce for a wallet's sign-in message (no key needed)."""
    if not same_origin(request):
        raise Problem(403, "cross-site-signin", "cross-site sign-in refused")
    await throttle(request, request.app.state.omnihub)
    signin = _signin(request.app.state.omnihub)
    try:
        nonce = await signin.nonces.issue(SIGNIN)
    except RedisError as exc:
        raise Problem(503, "nonce-store-unavailable", "cannot issue a nonce now") from exc
    expected = signin.expected
    address = body.address if body is not None else None
    return SignInNonceOut(
        address=None if address is None else to_checksum_address(address),
        nonce=nonce,
        expires_at=signin.expiry(datetime.now(UTC)),
        domain=expected.domain,
        uri=expected.uri,
        chain_id=expected.chain_id,
        statement=STATEMENT,
    )


@router.post("", response_model=None)
async def signin_wallet(body: SignInIn, request: Request) -> Response:
    """A signed SIWE message in; a session for the wallet's linked tenant out."""
    if not same_origin(request):
        raise Problem(403, "cross-site-signin", "cross-site sign-in refused")
    state: AppState = request.app.state.omnihub
    await throttle(request, state)
    sessions = _sessions(state)
    try:
        message = await _signin(state).verify(body.message, body.signature, SIGNIN)
    except SiweRefused as refused:
        await _refuse_proof(state, refused)
    except RedisError as exc:
        raise Problem(503, "nonce-store-unavailable", "cannot check the nonce now") from exc
    wallets = sessions.wallets
    assert wallets is not None  # _sessions checked it
    wallets.forget(message.address)  # a wallet linked a moment ago must be seen
    try:
        tenant_id = choose_tenant(await wallets.tenants_of(message.address), message.resources)
    except WalletChoiceRefused as refused:
        await _refuse_choice(state, message, refused)
    session = await sessions.open_wallet(message.address, tenant_id)
    security_of(state).audit.record_later(_fact(tenant_id, message, "success", {}))
    target = safe_next(body.next)
    answer = {"next": target, "tenant_id": tenant_id, "actor": f"wallet:{message.address}"}
    response = JSONResponse(answer, headers={"Cache-Control": "no-store"})
    set_session_cookie(response, request, session.session_id, sessions.ttl_s)
    return response


def _fact(tenant_id: str, message: SiweMessage, outcome: str, details: dict[str, str]) -> Any:
    return audit_fact(
        tenant_id,
        "authn",
        "wallet.signin",
        outcome,
        subject=f"wallet:{message.address}",
        resource=RESOURCE,
        details={"address": message.address, "chain_id": str(message.chain_id), **details},
    )


async def _refuse_proof(state: AppState, refused: SiweRefused) -> NoReturn:
    """A message that proves nothing: recorded, then problem details (always raises)."""
    await security_of(state).audit.record(
        audit_fact(
            UNAUTHENTICATED_TENANT,
            "authn",
            "wallet.signin",
            "failure",
            subject="anonymous",
            resource=RESOURCE,
            details={"reason": refused.reason},
        )
    )
    slug = "siwe-" + refused.reason.replace("_", "-")
    raise Problem(STATUS.get(refused.reason, 401), slug, refused.detail, reason=refused.reason)


async def _refuse_choice(
    state: AppState, message: SiweMessage, refused: WalletChoiceRefused
) -> NoReturn:
    """A proven wallet with no tenant to sign in to: recorded, then problem details."""
    tenant = refused.tenants[0] if refused.tenants else UNAUTHENTICATED_TENANT
    await security_of(state).audit.record(
        _fact(tenant, message, "failure", {"reason": refused.reason})
    )
    status = CHOICE_STATUS.get(refused.reason, 403)
    slug = "wallet-ambiguous" if refused.reason == "ambiguous" else "wallet-not-linked"
    extra: dict[str, Any] = {"reason": refused.reason}
    if refused.tenants:
        # The signer proved the address: telling it its own links discloses nothing new.
        extra["tenants"] = refused.tenants
    raise Problem(status, slug, refused.detail, **extra)
