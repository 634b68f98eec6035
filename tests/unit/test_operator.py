"""CLI actions name the operator: the OS user, or an ``--as`` that is itself recorded."""

from __future__ import annotations

import argparse

import pytest

from apps.cli import build_parser
from apps.commands.operator import Operator, operator_of, os_user
from domain.audit_facts import fact_for
from domain.entitlements import subscription_change

# Every operator command that changes state, with its required arguments.
STATE_CHANGING = [
    ["keys", "create", "--tenant", "acme", "--scopes", "admin"],
    ["keys", "rotate", "--tenant", "acme", "k1"],
    ["keys", "revoke", "--tenant", "acme", "k1"],
    ["tenants", "set-tier", "--tenant", "acme", "--tier", "pro"],
    ["deadletters", "replay", "omnihub.runs.v1:0:1"],
    ["projections", "rebuild"],
    ["plan-cache", "rebuild"],
    ["plan-cache", "purge"],
    ["plan-cache", "invalidate", "--tenant", "acme"],
    ["plan-cache", "share", "--tenant", "acme", "--template", "t1"],
    ["privacy", "erase", "--subject", "alice@example.com"],
    ["privacy", "rotate-kek"],
]


@pytest.mark.parametrize("argv", STATE_CHANGING, ids=lambda a: " ".join(a[:2]))
def test_every_state_changing_command_names_its_operator(argv: list[str]) -> None:
    me = os_user()
    plain = operator_of(build_parser(argv[0]).parse_args(argv))
    assert plain == Operator(me) and plain.actor == f"user:{me}"
    acting = operator_of(build_parser(argv[0]).parse_args([*argv, "--as", "alice"]))
    assert acting.actor == f"user:alice (os user {me})"
    assert acting.details() == {"os_user": me, "acting_as": "alice"}


def test_as_the_os_user_itself_is_not_acting_as_anyone() -> None:
    assert operator_of(argparse.Namespace(acting_as=os_user())) == Operator(os_user())


@pytest.mark.parametrize("forged", ["bob (os user root)", "a b", "", "-x", "x" * 65])
def test_as_refuses_names_that_could_forge_the_os_user(forged: str) -> None:
    parser = build_parser("tenants")
    with pytest.raises(SystemExit):
        parser.parse_args(["tenants", "set-tier", "--tenant", "a", "--tier", "pro", "--as", forged])


def test_tenants_set_tier_has_no_free_text_actor_any_more() -> None:
    with pytest.raises(SystemExit):
        build_parser("tenants").parse_args(
            ["tenants", "set-tier", "--tenant", "a", "--tier", "pro", "--actor", "user:x"]
        )


def test_the_audit_record_of_an_operator_event_names_both_accounts() -> None:
    operator = Operator("root", "alice")
    event = subscription_change("acme", "pro", actor=operator.actor, request_id="r1")
    assert event.envelope.actor == "user:alice (os user root)"
    from api.security.key_admin import created

    key_event, _ = created("s" * 32, "acme", ["admin"], actor=operator.actor)
    fact = fact_for(key_event)
    assert fact is not None and fact[3] == "user:alice (os user root)"
