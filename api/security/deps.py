"""``require(scope)``: the dependency every protected route declares.

In order: authenticate the key (401), count the request against the key's rate limit
(429, counted even when the scope check then fails, so probing costs quota), check the
scope (403), take a concurrency slot (429) and give it back when the request ends.
Failures and denials are audited before answering; successes in the background.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.audit import audit_fact
from api.security.limits import LimiterUnavailable
from api.security.principal import Principal
from api.security.services import SecurityServices
from domain import scopes

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="omnihub"'}


def security_of(state: AppState) -> SecurityServices:
    """The gateway's services of this app."""
    services: SecurityServices | None = getattr(state, "security", None)
    if services is None:
        raise Problem(503, "gateway-unavailable", "authentication is not configured")
    return services


def presented_key(request: Request) -> str | None:
    """The key from ``Authorization: Bearer <key>`` or ``X-API-Key``."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return request.headers.get("x-api-key") or None


async def _authenticate(sec: SecurityServices, request: Request, resource: str) -> Principal:
    result = await sec.authenticator.authenticate(presented_key(request))
    if result.principal is None:
        await sec.audit.record(
            audit_fact(
                result.tenant_id,
                "authn",
                "authenticate",
                "failure",
                subject=result.subject,
                resource=resource,
                details={"reason": result.reason},
            )
        )
        raise Problem(401, "unauthenticated", "a valid API key is required", headers=CHALLENGE)
    return result.principal


async def _limit_rate(sec: SecurityServices, p: Principal, rid: str, response: Response) -> None:
    try:
        decision = await sec.rate.hit(p.key_id, rid)
    except LimiterUnavailable as exc:
        raise Problem(
            503,
            "limiter-unavailable",
            "cannot check the rate limit right now",
            headers={"Retry-After": "5"},
        ) from exc
    response.headers.update(decision.headers())
    if not decision.allowed:
        raise Problem(
            429,
            "rate-limited",
            f"more than {decision.limit} requests a minute for this key",
            headers=decision.headers(),
        )


async def _authorize(sec: SecurityServices, p: Principal, scope: str, resource: str) -> None:
    details = {"needed": scope, "key_id": p.key_id}
    if not scopes.grants(p.scopes, scope):
        denied = audit_fact(
            p.tenant_id,
            "authz",
            scope,
            "denied",
            subject=p.actor,
            resource=resource,
            details=details,
        )
        await sec.audit.record(denied)
        raise Problem(
            403, "insufficient-scope", f"this key lacks the scope {scope!r}", needed=scope
        )
    allowed = audit_fact(
        p.tenant_id,
        "authn",
        "authenticate",
        "success",
        subject=p.actor,
        resource=resource,
        details=details,
    )
    sec.audit.record_later(allowed)


async def _take_slot(sec: SecurityServices, p: Principal, rid: str) -> None:
    try:
        acquired = await sec.concurrency.acquire(p.key_id, rid)
    except LimiterUnavailable as exc:
        raise Problem(
            503,
            "limiter-unavailable",
            "cannot check the concurrency limit",
            headers={"Retry-After": "5"},
        ) from exc
    if not acquired:
        raise Problem(
            429,
            "too-many-concurrent-requests",
            f"more than {sec.concurrency.limit} requests in flight for this key",
            headers={"Retry-After": "1"},
        )


def _guard(scope: str) -> Callable[..., AsyncIterator[Principal]]:
    scopes.grants((), scope)  # an unknown scope fails at import, not per request

    async def guard(
        request: Request, response: Response, state: StateDep
    ) -> AsyncIterator[Principal]:
        sec = security_of(state)
        rid, resource = str(uuid.uuid4()), f"{request.method} {request.url.path}"
        principal = await _authenticate(sec, request, resource)
        await _limit_rate(sec, principal, rid, response)
        await _authorize(sec, principal, scope, resource)
        await _take_slot(sec, principal, rid)
        try:
            yield principal
        finally:
            await sec.concurrency.release(principal.key_id, rid)

    return guard


def require(scope: str) -> Any:
    """``Annotated[Principal, require("goals:write")]``: a caller holding ``scope``."""
    return Depends(_guard(scope))


def Requires(scope: str) -> Any:
    """``principal: Requires("runs:read")``, shorthand for the Annotated form."""
    return Annotated[Principal, require(scope)]
