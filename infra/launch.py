"""Starting OmniHub's own processes ad hoc (tests, benchmarks) as subprocesses on free ports."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from omnihub import REPO_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"nothing listened on {port} within {timeout_s}s:\n{log.read_text()[-3000:]}"
    )


def spawn(argv: Sequence[str], env: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the repo with ``env`` on top of this environment, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            list(argv),
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(proc: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def running(
    argv: Sequence[str], env: Mapping[str, str], log: Path, grace_s: float = 15.0
) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`spawn` for the length of the block, then :func:`stop`."""
    proc = spawn(argv, env, log)
    try:
        yield proc
    finally:
        stop(proc, grace_s)


def omnihub_argv(*args: str) -> list[str]:
    """``python -m apps.cli <args>`` with this interpreter."""
    return [sys.executable, "-m", "apps.cli", *args]


@contextmanager
def running_api(env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """A real ``uvicorn apps.api:create_app`` process; yields its base URL."""
    port = free_port()
    log = log_dir / f"api-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "uvicorn",
        "apps.api:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
    ]
    with running(argv, env, log, grace_s=10) as proc:
        wait_for_port(port, proc, log, timeout_s=60)
        yield f"http://127.0.0.1:{port}"
