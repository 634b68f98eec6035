"""Who an operator's command acts as: the OS user, or an ``--as`` that is itself audited.

Every ``omnihub`` command that changes state takes ``--as NAME`` (:func:`add_as`) and
names its actor with :func:`operator_of`. Without ``--as`` the actor is
``user:<OS user>``. With it, the actor is ``user:NAME (os user X)``: the name the
operator chose and the account that really ran the command are both in the event, so
an audit record shows who acted as whom. Commands whose change is not an event of its
own (a rebuild, a purge, a replay) record an ``operations`` audit fact with
:func:`record_operation`, whose details name both too.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from domain.audit_retention import PLATFORM
from omnihub.settings import Settings

# What ``--as`` accepts: no spaces or parentheses, so nobody can forge the "(os user X)"
# suffix that names the real account.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")
# Operations on no one tenant go to the platform chain, which every tenant's auditor reads.
PLATFORM_TENANT = PLATFORM


@dataclass(frozen=True)
class Operator:
    """The account that ran the command, and the name it acts as (if ``--as``)."""

    os_user: str
    acting_as: str | None = None

    @property
    def actor(self) -> str:
        """How events name this operator."""
        if self.acting_as is None:
            return f"user:{self.os_user}"
        return f"user:{self.acting_as} (os user {self.os_user})"

    def details(self) -> dict[str, str]:
        """Audit details naming the account, and the name it acted as."""
        found = {"os_user": self.os_user}
        if self.acting_as is not None:
            found["acting_as"] = self.acting_as
        return found


def os_user() -> str:
    """The account running this process (``getpass``; the uid when it has no name)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no passwd entry, e.g. in a container
        return f"uid-{os.getuid()}"


def _name(text: str) -> str:
    if not NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"--as must match {NAME.pattern} (letters, digits, . _ @ + -), got {text!r}"
        )
    return text


def add_as(parser: argparse.ArgumentParser) -> None:
    """Add ``--as NAME`` to a command that changes state."""
    parser.add_argument(
        "--as",
        dest="acting_as",
        type=_name,
        metavar="NAME",
        help="the operator to record (default: the OS user); the OS user is recorded too",
    )


def operator_of(args: argparse.Namespace) -> Operator:
    """The operator of a parsed command (see :func:`add_as`)."""
    name = getattr(args, "acting_as", None)
    user = os_user()
    return Operator(user, None if name in (None, user) else name)


async def record_operation(
    settings: Settings,
    operator: Operator,
    action: str,
    resource: str,
    details: Mapping[str, str] | None = None,
    *,
    outcome: str = "success",
    tenant_id: str = PLATFORM_TENANT,
) -> None:
    """Append an ``operations`` audit fact naming ``operator`` (and whom it acted as)."""
    from api.security.audit import audit_fact

    fact = audit_fact(
        tenant_id,
        "operations",
        action,
        outcome,
        subject=operator.actor,
        resource=resource,
        details={**(details or {}), **operator.details()},
    )
    await _append(settings, fact)


async def _append(settings: Settings, event: Any) -> None:
    from streams.codec import EventCodec
    from streams.producer import KafkaEventAppender
    from streams.schema_registry import SchemaRegistry

    appender = KafkaEventAppender(
        settings, EventCodec(SchemaRegistry.from_dir(settings.schemas_dir))
    )
    try:
        await appender.append(event)
    finally:
        await appender.stop()
