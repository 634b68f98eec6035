"""Scope hierarchy: what each scope grants, and who may mint which key."""

from __future__ import annotations

import pytest

from domain import scopes


@pytest.mark.parametrize(
    ("held", "needed", "allowed"),
    [
        ({"admin"}, "goals:write", True),
        ({"admin"}, "runs:read", True),
        ({"admin"}, "audit:read", True),
        ({"admin"}, "keys:admin", True),
        ({"write"}, "goals:write", True),
        ({"write"}, "approvals:decide", False),  # four eyes: never implied by write
        ({"admin"}, "approvals:decide", False),
        ({"write"}, "runs:read", True),
        ({"write"}, "audit:read", False),
        ({"write"}, "keys:admin", False),
        ({"read"}, "runs:read", True),
        ({"read"}, "goals:write", False),
        ({"read"}, "approvals:decide", False),
        ({"goals:write"}, "goals:write", True),
        ({"goals:write"}, "runs:read", False),
        ({"audit:read"}, "audit:read", True),
        ({"audit:read"}, "runs:read", False),
        ({"approvals:decide"}, "approvals:read", True),
        ({"admin"}, "platform:killswitch", False),
        ({"platform:killswitch"}, "platform:killswitch", True),
        ({"admin"}, "platform:tiers", False),
        ({"platform:tiers"}, "platform:tiers", True),
        ({"read"}, "tenant:read", True),
        (set(), "runs:read", False),
        ({"bogus"}, "runs:read", False),
    ],
)
def test_grants_follows_the_hierarchy(held: set[str], needed: str, allowed: bool) -> None:
    assert scopes.grants(held, needed) is allowed


def test_a_route_cannot_need_an_unknown_scope() -> None:
    with pytest.raises(scopes.UnknownScope):
        scopes.grants({"admin"}, "everything")


def test_validate_names_the_unknown_scope() -> None:
    assert scopes.validate(["read", "goals:write"]) == {"read", "goals:write"}
    with pytest.raises(scopes.UnknownScope, match="'root'"):
        scopes.validate(["read", "root"])


def test_expand_is_transitive() -> None:
    assert {"write", "read", "runs:read", "goals:write", "audit:read"} <= scopes.expand({"admin"})
    assert "audit:read" not in scopes.expand({"write"})


@pytest.mark.parametrize(
    ("held", "requested", "ok"),
    [
        ({"admin"}, {"read", "goals:write"}, True),
        ({"admin"}, {"admin"}, True),
        ({"admin"}, {"platform:killswitch"}, False),
        ({"write"}, {"admin"}, False),
        ({"write"}, {"audit:read"}, False),
        ({"keys:admin", "read"}, {"write"}, False),
        ({"keys:admin", "read"}, {"runs:read"}, True),
    ],
)
def test_a_key_never_mints_a_more_powerful_key(
    held: set[str], requested: set[str], ok: bool
) -> None:
    assert scopes.can_delegate(held, requested) is ok
