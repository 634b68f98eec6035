"""What an API key may do: hierarchical scopes and the routes' needs, decided purely.

``admin`` implies ``write``, which implies ``read``; each broad scope also implies the
resource scopes listed under it. Some scopes are deliberately implied by nothing:

- ``audit:read`` is granted only by ``admin`` or explicitly, so an ordinary writer
  cannot read who did what;
- ``platform:killswitch`` is granted only explicitly: a kill switch stops a feature for
  every tenant, so no tenant's ``admin`` may hold it by implication;
- ``platform:tiers`` likewise: it sets any tenant's subscription tier, so a tenant's
  ``admin`` cannot raise its own;
- ``approvals:decide`` is granted only explicitly (four eyes): the keys that post goals
  are not, by default, the keys that approve them. It is not even in ``admin``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

IMPLIES: Mapping[str, frozenset[str]] = {
    "admin": frozenset({"write", "audit:read", "keys:admin", "wallets:link", "templates:share"}),
    "write": frozenset({"read", "goals:write", "runs:cancel"}),
    "read": frozenset({"runs:read", "approvals:read", "kpis:read", "keys:read", "tenant:read"}),
    "keys:admin": frozenset({"keys:read"}),
    "goals:write": frozenset(),
    "approvals:decide": frozenset({"approvals:read"}),
    "runs:cancel": frozenset(),
    "runs:read": frozenset(),
    "approvals:read": frozenset(),
    "kpis:read": frozenset(),
    "keys:read": frozenset(),
    "audit:read": frozenset(),
    "wallets:link": frozenset(),
    "platform:killswitch": frozenset(),
    "platform:tiers": frozenset(),
    "tenant:read": frozenset(),
    "templates:share": frozenset(),
}
"""Each known scope and the scopes it directly implies."""

KNOWN_SCOPES: frozenset[str] = frozenset(IMPLIES)


class UnknownScope(ValueError):
    """A scope name that is not in :data:`IMPLIES`."""


def validate(scopes: Iterable[str]) -> frozenset[str]:
    """The scopes as a set; raises :class:`UnknownScope` naming the first unknown one."""
    result = frozenset(scopes)
    unknown = sorted(result - KNOWN_SCOPES)
    if unknown:
        raise UnknownScope(f"unknown scope {unknown[0]!r}; known: {', '.join(sorted(IMPLIES))}")
    return result


def expand(scopes: Iterable[str]) -> frozenset[str]:
    """Every scope ``scopes`` grants, directly or by implication (unknown ones ignored)."""
    seen: set[str] = set()
    todo = [s for s in scopes if s in IMPLIES]
    while todo:
        scope = todo.pop()
        if scope not in seen:
            seen.add(scope)
            todo.extend(IMPLIES[scope])
    return frozenset(seen)


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether a key holding ``held`` may do what needs ``needed``."""
    if needed not in IMPLIES:
        raise UnknownScope(f"no route may need the unknown scope {needed!r}")
    return needed in expand(held)


def can_delegate(held: Iterable[str], requested: Iterable[str]) -> bool:
    """Whether a key holding ``held`` may mint a key with ``requested``.

    A key never creates a key more powerful than itself: every requested scope must
    already be granted to it.
    """
    have = expand(held)
    return all(s in have for s in requested)


# What a tenant may be called: the API's body field and the operator's CLI check the same.
TENANT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def valid_tenant(name: str) -> bool:
    """Whether ``name`` may name a tenant."""
    return re.fullmatch(TENANT_PATTERN, name) is not None


def parse_scope_list(text: str) -> list[str]:
    """``"a, b"`` or ``"a,b"`` as the scope names it lists."""
    return [part.strip() for part in text.split(",") if part.strip()]
