"""Readiness for the stack's processes that listen on no port.

``omnihub stack up`` hands such a process ``OMNIHUB_READY_FILE`` and waits for the file:
the process calls :func:`mark_ready` once it really serves (migrations applied, clients
connected). A process that dies before that is reported with its log tail, instead of
being taken for healthy because it was started.
"""

from __future__ import annotations

import os
from pathlib import Path

READY_FILE_ENV = "OMNIHUB_READY_FILE"


def mark_ready() -> None:
    """Tell the stack this process serves; a no-op when not started by the stack."""
    path = os.environ.get(READY_FILE_ENV)
    if path:
        Path(path).touch()
