"""``require(scope)``: the dependency every protected route declares.

In order: authenticate the key (401), read the tenant's tier (cached; 503 if it cannot
be read), count the request against the key's and the tenant's rate limits of that
tier (429, counted even when the scope check then fails, so probing costs quota), check
the scope (403), take the key's and the tenant's concurrency slots (429) and give them
back as soon as the route has returned, before its answer is sent. A 429 names the
entitlement that refused it and is audited (in the background, as a flood of them
must not slow the answers).
Failures and denials are audited before answering; successes in the background.

The rate count and the slot are one Redis round trip (``RedisLimiter.admit``): the scope
is checked locally first and its answer passed in, so the slot is taken only when the
rate and the scope allow it, while the answers keep the order above. Redis not
answering is 503 ``limiter-unavailable`` (fail closed).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Request, Response
from redis.exceptions import RedisError

from api.access_log import PRINCIPAL
from api.deps import AppState, StateDep
from api.problems import Problem
from api.security.audit import audit_fact
from api.security.limits import Admission, LimiterUnavailable, Limits
from api.security.principal import Principal
from api.security.services import SecurityServices
from api.security.tiers import TiersUnavailable, unavailable
from domain import scopes
from domain.entitlements import Effective
from omnihub import metrics

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
    key = presented_key(request)
    device = key is None and sec.devices is not None and sec.devices.presented(request)
    if device and sec.devices is not None:  # signed by a trusted device's key instead
        try:
            result = await sec.devices.authenticate(request)
        except RedisError as exc:
            raise Problem(503, "nonce-store-unavailable", "cannot check the nonce now") from exc
    else:
        result = await sec.authenticator.authenticate(key)
    if key is None and not device and sec.sessions is not None:  # the dashboard's cookie
        result = await sec.sessions.authenticate(request) or result
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
        if device:
            raise Problem(
                401,
                "device-signature-refused",
                f"the device signature proves nothing: {result.reason}",
                headers=CHALLENGE,
                reason=result.reason,
            )
        raise Problem(401, "unauthenticated", "a valid API key is required", headers=CHALLENGE)
    return result.principal


async def tier_of(state: AppState, p: Principal) -> Effective:
    """The caller's tenant's tier now (cached per ``tier_cache_ttl_s``); 503 if unreadable."""
    tiers = security_of(state).tiers
    if tiers is None:
        raise Problem(503, "gateway-unavailable", "tiers are not configured")
    try:
        return await tiers.effective(p.tenant_id)
    except TiersUnavailable as exc:
        raise unavailable(exc) from exc


def _limit_fact(p: Principal, tier: Effective, entitlement: str, resource: str) -> Any:
    return audit_fact(
        p.tenant_id,
        "entitlement",
        entitlement,
        "denied",
        subject=p.actor,
        resource=resource,
        details={"tier": tier.tier, "source": tier.source, "key_id": p.key_id},
    )


async def _admit(
    sec: SecurityServices,
    p: Principal,
    rid: str,
    granted: bool,
    response: Response,
    tier: Effective,
    resource: str,
) -> tuple[Admission, Limits]:
    """Count the request (429 if over a rate); says whether it also got its slots."""
    limits = Limits.of(
        {k: g.value for k, g in tier.entitlements.items()}, sec.rate_override, sec.busy_override
    )
    try:
        admission = await sec.limits.admit(
            p.key_id, rid, scope_granted=granted, tenant_id=p.tenant_id, limits=limits
        )
    except LimiterUnavailable as exc:
        raise Problem(
            503,
            "limiter-unavailable",
            "cannot check the rate limit right now",
            headers={"Retry-After": "5"},
        ) from exc
    decision = admission.rate
    response.headers.update(decision.headers())
    if not decision.allowed:
        metrics.RATE_LIMIT_REFUSALS.labels("rate").inc()
        which = admission.refused_by or "requests_per_minute_per_key"
        sec.audit.record_later(_limit_fact(p, tier, which, resource))
        whose = "tenant" if which.endswith("tenant") else "key"
        raise Problem(
            429,
            "rate-limited",
            f"more than {decision.limit} requests a minute for this {whose} ({tier.tier} tier)",
            headers=decision.headers(),
            entitlement=which,
            tier=tier.tier,
        )
    return admission, limits


async def _authorize(
    sec: SecurityServices, p: Principal, scope: str, granted: bool, resource: str
) -> None:
    details = {"needed": scope, "key_id": p.key_id}
    if not granted:
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


def _refuse_busy(
    sec: SecurityServices,
    admission: Admission,
    limits: Limits,
    p: Principal,
    tier: Effective,
    resource: str,
) -> Problem:
    metrics.RATE_LIMIT_REFUSALS.labels("concurrency").inc()
    which = admission.refused_by or "in_flight_per_key"
    sec.audit.record_later(_limit_fact(p, tier, which, resource))
    whose = "tenant" if which.endswith("tenant") else "key"
    # The rate headers too: a client backing off reads them on every 429 alike.
    return Problem(
        429,
        "too-many-concurrent-requests",
        f"more than {limits.value(which)} requests in flight for this {whose} ({tier.tier} tier)",
        headers={**admission.rate.headers(), "Retry-After": "1"},
        entitlement=which,
        tier=tier.tier,
    )


def _guard(scope: str) -> Callable[..., AsyncIterator[Principal]]:
    scopes.grants((), scope)  # an unknown scope fails at import, not per request

    async def guard(
        request: Request, response: Response, state: StateDep
    ) -> AsyncIterator[Principal]:
        sec = security_of(state)
        rid, resource = str(uuid.uuid4()), f"{request.method} {request.url.path}"
        principal = await _authenticate(sec, request, resource)
        request.scope[PRINCIPAL] = principal  # for the access log
        if sec.last_used is not None:
            sec.last_used.touch(principal.key_id)
        tier = await tier_of(state, principal)
        granted = scopes.grants(principal.scopes, scope)
        admission, limits = await _admit(sec, principal, rid, granted, response, tier, resource)
        await _authorize(sec, principal, scope, granted, resource)
        if not admission.slot:
            raise _refuse_busy(sec, admission, limits, principal, tier, resource)
        try:
            yield principal
        finally:
            await sec.limits.release(principal.key_id, rid, principal.tenant_id)

    guard.required_scope = scope  # type: ignore[attr-defined]  # read by api.openapi
    return guard


def require(scope: str) -> Any:
    """``Annotated[Principal, require("goals:write")]``: a caller holding ``scope``.

    Function-scoped, so the slot is given back when the route returns, before the answer
    is sent: a client at its concurrency limit may send its next request at once.
    """
    return Depends(_guard(scope), scope="function")


def Requires(scope: str) -> Any:
    """``principal: Requires("runs:read")``, shorthand for the Annotated form."""
    return Annotated[Principal, require(scope)]
