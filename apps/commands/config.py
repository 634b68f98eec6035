"""``omnihub config show``: the effective settings of this shell, secrets redacted.

What a process started from here would run with: the ``OMNIHUB_*`` environment, then
``.env``, then the defaults. Every value whose name says it is a secret (key, secret,
password, token, a DSN's password) is shown as ``***`` unless it is the development
placeholder, which is shown so that it can be noticed.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from omnihub.settings import PLACEHOLDER_SECRET, Settings, get_settings

SECRET_NAME = re.compile(r"(secret|password|token|api_key|private_key|kek)", re.IGNORECASE)
DSN_PASSWORD = re.compile(r"(://[^:/@]+:)([^@]+)(@)")


def register(sub: Any) -> None:
    """Add ``config show``."""
    config = sub.add_parser("config", help="the effective settings", description=__doc__)
    cmds = config.add_subparsers(dest="action", required=True)
    show = cmds.add_parser("show", help="print every setting, secrets redacted")
    show.add_argument("--json", action="store_true", help="one JSON document")
    show.set_defaults(handler=_show)


def redacted(settings: Settings) -> dict[str, Any]:
    """Every setting as its environment variable, with secrets replaced by ``***``."""
    out: dict[str, Any] = {}
    for name, value in settings.model_dump(mode="json").items():
        if isinstance(value, str) and value and value != PLACEHOLDER_SECRET:
            value = "***" if SECRET_NAME.search(name) else DSN_PASSWORD.sub(r"\1***\3", value)
        out[f"OMNIHUB_{name.upper()}"] = value
    return out


def _show(args: argparse.Namespace) -> int:
    values = redacted(get_settings())
    if args.json:
        print(json.dumps(values, indent=2, sort_keys=True))
        return 0
    width = max(map(len, values))
    for name, value in sorted(values.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        print(f"{name:<{width}}  {text}")
    return 0
