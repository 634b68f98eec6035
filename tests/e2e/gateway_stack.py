"""A gateway of its own on the shared test stack: real API and processor subprocesses,
with a unique topic prefix, Postgres schema, Redis database and server secret, so the
kill switches and keys of these tests never touch anyone else's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.launch import running
from infra.stack import StackConfig
from omnihub import REPO_ROOT

GATEWAY_REDIS_DB = 9


def gateway_env(stack: StackConfig, **extra: str) -> dict[str, str]:
    """The stack's client env with this gateway's own prefix, schema, Redis db and secret."""
    tag = uuid.uuid4().hex[:10]
    env = dict(stack.client_env())
    env["OMNIHUB_REDIS_URL"] = re.sub(r"/\d+$", f"/{GATEWAY_REDIS_DB}", env["OMNIHUB_REDIS_URL"])
    env.update(
        OMNIHUB_TOPIC_PREFIX=f"gw{tag}",
        OMNIHUB_PROJECTIONS_SCHEMA=f"gw_{tag}",
        OMNIHUB_SECRET_KEY=uuid.uuid4().hex,
        OMNIHUB_TOPIC_PARTITIONS="3",
    )
    env.update(extra)
    return env


@contextmanager
def running_processor(env: Mapping[str, str], log_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``omnihub gateway run`` until the block ends."""
    argv = [sys.executable, "-m", "apps.cli", "gateway", "run"]
    with running(argv, env, log_dir / "security-processor.log") as proc:
        yield proc


def omnihub(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``omnihub`` CLI with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "apps.cli", *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass(frozen=True)
class CliKey:
    key_id: str
    key: str


def cli_key(env: Mapping[str, str], tenant: str, scopes: str) -> CliKey:
    """A key made by ``omnihub keys create`` (retried while the processor starts)."""
    deadline = time.monotonic() + 90
    while True:
        done = omnihub(env, "keys", "create", "--tenant", tenant, "--scopes", scopes)
        if done.returncode == 0:
            fields = dict(line.split(":", 1) for line in done.stdout.splitlines() if ":" in line)
            return CliKey(fields["key_id"].strip(), fields["key"].strip())
        if time.monotonic() > deadline:
            raise RuntimeError(f"omnihub keys create failed:\n{done.stdout}\n{done.stderr}")
        time.sleep(1)
