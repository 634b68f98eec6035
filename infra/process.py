"""Detached processes tracked by pid files that also prove the process is the same one.

A pid file records the pid, the process start time (``/proc/<pid>/stat`` field 22) and
the endpoint. A pid is only trusted while a live, non-zombie process with that pid has
that start time, so a recycled pid is never mistaken for our server.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

POLL_S = 0.1


@dataclass(frozen=True)
class PidRecord:
    """What ``<state>/run/<name>.pid`` holds."""

    pid: int
    start_ticks: int
    endpoint: str
    version: str = ""  # ServiceSpec.version when it was started

    def write(self, path: Path) -> None:
        """Write atomically, so a reader never sees half a record."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__) + "\n")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> PidRecord | None:
        """The record, or None when the file is missing or unreadable."""
        try:
            data = json.loads(path.read_text())
            return cls(
                int(data["pid"]),
                int(data["start_ticks"]),
                str(data["endpoint"]),
                str(data.get("version", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None


def start_ticks(pid: int) -> int | None:
    """The start time of a live process in clock ticks, None once it has fully exited.

    A multi-threaded process (Java, Go) whose main thread is already a zombie is still
    alive until its last thread exits: only then are its files and ports released.
    """
    _reap(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after it.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] in ("Z", "X") and not _threads_left(pid):
        return None
    return int(fields[19])


def _threads_left(pid: int) -> bool:
    """True while other threads of a zombie leader still run (and hold its sockets)."""
    try:
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except OSError:
        return False


def is_alive(record: PidRecord) -> bool:
    """True while the process in ``record`` is still the one that was started."""
    return start_ticks(record.pid) == record.start_ticks


def launch(argv: Sequence[str], log_path: Path, env: Mapping[str, str], user: str | None) -> int:
    """Start ``argv`` in its own session, output appended to ``log_path``; return its pid."""
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    with log_path.open("ab") as log:
        log.write(f"\n=== {stamp} omnihub stack: {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=log_path.parent,
            start_new_session=True,
            **as_user(user),
        )
    return proc.pid


def as_user(user: str | None) -> dict[str, Any]:
    """``subprocess`` arguments to run as ``user`` with its own groups only.

    ``user=`` alone keeps root's group, and Linux then applies a folder's group bits
    (often none) instead of its "other" bits.
    """
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def wait_gone(record: PidRecord, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for the process to exit; True if it did."""
    deadline = time.monotonic() + timeout_s
    while is_alive(record):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def terminate(record: PidRecord, sig: signal.Signals, grace_s: float) -> None:
    """Send ``sig`` to the process, then SIGKILL its whole session after ``grace_s``."""
    if not is_alive(record):
        return
    try:
        os.kill(record.pid, sig)
    except ProcessLookupError:
        return
    if not wait_gone(record, grace_s):
        kill_group(record)


def kill_group(record: PidRecord) -> None:
    """SIGKILL the process and everything in its session (it leads its own group)."""
    if not is_alive(record):
        return
    try:
        os.killpg(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    wait_gone(record, 10.0)


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file, or "" if there is none."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode(errors="replace").splitlines()[-lines:])


def _reap(pid: int) -> None:
    """Collect an exited child of this process so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
