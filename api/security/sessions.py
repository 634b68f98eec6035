"""Dashboard sessions: an API key exchanged once for a cookie, with a CSRF token.

The cookie holds only a random session id; Redis holds which key (or, signed in with a
wallet, which wallet and tenant: ``api/security/wallet_sessions.py``) it stands for and
the session's CSRF token, for ``session_ttl_s``. Every request made with the cookie checks
the key again (a revoked or expired key ends its sessions at once) or that the wallet is
still linked, and every state
change must echo the CSRF token in ``X-CSRF-Token``: a page of another site can make
the browser send the cookie (SameSite=Strict already stops that in today's browsers)
but cannot read the token.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass

from fastapi import Request
from redis.asyncio import Redis

from api.problems import Problem
from api.security.principal import Authenticator, AuthResult
from api.security.wallet_sessions import WalletDirectory

COOKIE = "omnihub_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the key's prefix (or the wallet's address) and the CSRF token
    it must echo."""

    session_id: str
    prefix: str
    tenant_id: str
    csrf: str
    kind: str = "api-key"  # or "wallet": then ``prefix`` is the EIP-55 address


class SessionStore:
    """Sessions in Redis under ``<prefix>:session:<id>``."""

    def __init__(
        self,
        redis: Redis,
        authenticator: Authenticator,
        ttl_s: int,
        prefix: str,
        wallets: WalletDirectory | None = None,
    ):
        self._redis = redis
        self._auth = authenticator
        self.wallets = wallets
        self.ttl_s = ttl_s
        self._prefix = prefix

    def _key(self, session_id: str) -> str:
        return f"{self._prefix}:session:{session_id}"

    async def open(self, presented_key: str) -> tuple[Session | None, AuthResult]:
        """A new session for a valid key, or None and why the key was refused."""
        result = await self._auth.authenticate(presented_key)
        if result.principal is None:
            return None, result
        p = result.principal
        return await self._store(p.prefix, p.tenant_id, "api-key"), result

    async def open_wallet(self, address: str, tenant_id: str) -> Session:
        """A new session for a wallet whose signature and link were just checked."""
        return await self._store(address, tenant_id, "wallet")

    async def _store(self, prefix: str, tenant_id: str, kind: str) -> Session:
        session = Session(
            secrets.token_urlsafe(32), prefix, tenant_id, secrets.token_urlsafe(32), kind
        )
        body = {"prefix": prefix, "tenant_id": tenant_id, "csrf": session.csrf, "kind": kind}
        await self._redis.set(self._key(session.session_id), json.dumps(body), ex=self.ttl_s)
        return session

    async def find(self, session_id: str | None) -> Session | None:
        """The live session with this id, or None."""
        if not session_id or len(session_id) > 100:
            return None
        raw = await self._redis.get(self._key(session_id))
        if raw is None:
            return None
        data = json.loads(raw)
        kind = data.get("kind", "api-key")  # sessions opened before wallets had none
        return Session(session_id, data["prefix"], data["tenant_id"], data["csrf"], kind)

    async def close(self, session_id: str | None) -> None:
        """Forget a session (sign-out)."""
        if session_id:
            await self._redis.delete(self._key(session_id))

    async def authenticate(self, request: Request) -> AuthResult | None:
        """The principal behind the request's session cookie; None without a cookie.

        A state change without the session's CSRF token is a 403 problem.
        """
        cookie = request.cookies.get(COOKIE)
        if cookie is None:
            return None
        session = await self.find(cookie)
        if session is None:
            return None
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
                raise Problem(403, "csrf-failed", "a state change needs the X-CSRF-Token header")
        return await self.recheck(session)

    async def recheck(self, session: Session) -> AuthResult:
        """The session's principal now: its key still usable, or its wallet still linked."""
        if session.kind == "wallet":
            if self.wallets is None:
                return AuthResult(None, "unlinked", session.tenant_id, f"wallet:{session.prefix}")
            return await self.wallets.recheck(session.prefix, session.tenant_id)
        return await self._auth.recheck(session.prefix)
