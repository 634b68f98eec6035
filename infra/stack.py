"""Bring the local stack up and down: detached processes, pid files, health checks.

Services come from ``SERVICE_MODULES`` (each exposes ``SERVICES: tuple[ServiceSpec, ...]``,
in start order) followed by anything passed to ``register_service``. ``up`` is
idempotent: a service whose recorded pid is still the process it started is reported
as already running. Every call holds ``<state>/run/stack.lock``, so concurrent callers
(two test sessions, a CLI and a test) take turns instead of racing.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from infra.config import StackConfig
from infra.probes import port_in_use
from infra.process import PidRecord, is_alive, kill_group, launch, start_ticks, tail, terminate
from infra.services import ServiceSpec, ServiceStatus, StackError

__all__ = [
    "ServiceSpec",
    "ServiceStatus",
    "StackConfig",
    "StackError",
    "down",
    "kill",
    "log_path",
    "register_service",
    "services",
    "status",
    "unregister_service",
    "up",
]

SERVICE_MODULES = ("infra.backing", "infra.platform")
"""Modules whose ``SERVICES`` tuples make up the stack, in start order."""

_registered: dict[str, ServiceSpec] = {}


def register_service(spec: ServiceSpec) -> None:
    """Add (or replace) a service at run time; it starts after the module services."""
    if any(s.name == spec.name for s in _module_services()):
        raise ValueError(f"service {spec.name!r} is already defined in {SERVICE_MODULES}")
    _registered[spec.name] = spec


def unregister_service(name: str) -> None:
    """Forget a service added with ``register_service`` (a no-op for unknown names)."""
    _registered.pop(name, None)


def services() -> list[ServiceSpec]:
    """Every known service, in start order."""
    return [*_module_services(), *_registered.values()]


def log_path(cfg: StackConfig, name: str) -> Path:
    """``<state>/logs/<name>.log``: the service's stdout and stderr."""
    return cfg.logs_dir / f"{name}.log"


def up(cfg: StackConfig, names: Sequence[str] | None = None) -> list[ServiceStatus]:
    """Start the named services (default: all) in order and wait until each is healthy.

    Raises ``StackError`` with the service's log tail when one exits, is not healthy
    within its ``start_timeout_s``, or cannot start because its port is taken. A service
    that failed this way is stopped again; the ones before it keep running.
    """
    specs = _select(cfg, names)
    with _locked(cfg):
        return [_up_one(cfg, spec) for spec in specs]


def down(cfg: StackConfig, names: Sequence[str] | None = None) -> list[ServiceStatus]:
    """Stop the named services (default: all) in reverse start order, by recorded pid.

    A service this stack no longer enables (fewer brokers) is stopped too if it runs.
    """
    specs = _select(cfg, names, or_running=True)
    with _locked(cfg):
        return [_down_one(cfg, spec) for spec in reversed(specs)]


def status(cfg: StackConfig, names: Sequence[str] | None = None) -> list[ServiceStatus]:
    """Each service as running, unhealthy (alive, probe fails) or stopped."""
    result = []
    for spec in _select(cfg, names):
        record = _live_record(cfg, spec)
        endpoint = spec.endpoint(cfg)
        if record is None:
            result.append(ServiceStatus(spec.name, "stopped", None, endpoint))
        elif spec.health(cfg):
            result.append(ServiceStatus(spec.name, "running", record.pid, endpoint))
        else:
            result.append(ServiceStatus(spec.name, "unhealthy", record.pid, endpoint))
    return result


def kill(cfg: StackConfig, name: str) -> None:
    """SIGKILL a service and its session, as a crash would; the pid file stays behind."""
    selected = _select(cfg, [name], or_running=True)  # empty: not in this stack, not running
    record = _live_record(cfg, selected[0]) if selected else None
    if record is not None:
        kill_group(record)


def _up_one(cfg: StackConfig, spec: ServiceSpec) -> ServiceStatus:
    endpoint = spec.endpoint(cfg)
    record = _live_record(cfg, spec)
    if record is not None:
        if record.endpoint != endpoint:
            raise StackError(
                spec.name,
                f"already running at {record.endpoint}, not "
                f"{endpoint}: stop it first (omnihub stack down {spec.name})",
            )
        version = spec.version(cfg)
        if record.version == version:
            _wait_healthy(cfg, spec, record)
            spec.after_start(cfg)
            return ServiceStatus(spec.name, "running", record.pid, endpoint, "already running")
        _stop(cfg, spec, record)  # it runs other code than this checkout's: replace it
        detail = f"restarted: code or configuration changed since pid {record.pid} started"
    else:
        detail = "started"
    record = _start(cfg, spec)
    _wait_healthy(cfg, spec, record)
    spec.after_start(cfg)
    return ServiceStatus(spec.name, "running", record.pid, endpoint, detail)


def _start(cfg: StackConfig, spec: ServiceSpec) -> PidRecord:
    busy = [port for port in spec.ports(cfg) if port_in_use(port)]
    if busy:
        raise StackError(spec.name, f"port(s) {busy} already in use by another process")
    spec.prepare(cfg)
    env = {**os.environ, **cfg.client_env(), **spec.env(cfg)}
    pid = launch(spec.argv(cfg), log_path(cfg, spec.name), env, spec.user(cfg))
    ticks = start_ticks(pid)
    if ticks is None:
        raise StackError(spec.name, "exited immediately", tail(log_path(cfg, spec.name)))
    record = PidRecord(pid, ticks, spec.endpoint(cfg), spec.version(cfg))
    record.write(_pid_file(cfg, spec))
    return record


def _wait_healthy(cfg: StackConfig, spec: ServiceSpec, record: PidRecord) -> None:
    deadline = time.monotonic() + spec.start_timeout_s
    while not spec.health(cfg):
        if not is_alive(record):
            _pid_file(cfg, spec).unlink(missing_ok=True)
            raise StackError(
                spec.name,
                f"exited during startup (pid {record.pid})",
                tail(log_path(cfg, spec.name)),
            )
        if time.monotonic() >= deadline:
            _stop(cfg, spec, record)
            raise StackError(
                spec.name,
                f"not healthy within {spec.start_timeout_s:g}s; stopped it",
                tail(log_path(cfg, spec.name)),
            )
        time.sleep(0.2)


def _down_one(cfg: StackConfig, spec: ServiceSpec) -> ServiceStatus:
    endpoint = spec.endpoint(cfg)
    record = _live_record(cfg, spec)
    if record is None:
        return ServiceStatus(spec.name, "stopped", None, endpoint, "was not running")
    _stop(cfg, spec, record)
    if is_alive(record):
        raise StackError(spec.name, f"pid {record.pid} survived SIGKILL")
    return ServiceStatus(spec.name, "stopped", None, endpoint, f"stopped pid {record.pid}")


def _stop(cfg: StackConfig, spec: ServiceSpec, record: PidRecord) -> None:
    terminate(record, spec.stop_signal, spec.stop_grace_s)
    # Helpers left in the session (e.g. Postgres backends) go with their leader.
    kill_group(record)
    _pid_file(cfg, spec).unlink(missing_ok=True)


def _live_record(cfg: StackConfig, spec: ServiceSpec) -> PidRecord | None:
    """The recorded process if it is still the one we started; stale pid files go."""
    path = _pid_file(cfg, spec)
    record = PidRecord.read(path)
    if record is not None and is_alive(record):
        return record
    path.unlink(missing_ok=True)
    return None


def _pid_file(cfg: StackConfig, spec: ServiceSpec) -> Path:
    return cfg.run_dir / f"{spec.name}.pid"


def _select(
    cfg: StackConfig, names: Sequence[str] | None, or_running: bool = False
) -> list[ServiceSpec]:
    """The named (default: all) services this stack enables, in start order; with
    ``or_running`` also those it does not enable but that still run."""
    known = services()
    if names:
        by_name = {spec.name: spec for spec in known}
        unknown = [name for name in names if name not in by_name]
        if unknown:
            raise StackError(", ".join(unknown), f"unknown service; known: {', '.join(by_name)}")
        known = [spec for spec in known if spec.name in set(names)]
    return [
        spec
        for spec in known
        if spec.enabled(cfg) or (or_running and _live_record(cfg, spec) is not None)
    ]


def _module_services() -> list[ServiceSpec]:
    specs: list[ServiceSpec] = []
    for module in SERVICE_MODULES:
        specs.extend(importlib.import_module(module).SERVICES)
    return specs


@contextmanager
def _locked(cfg: StackConfig) -> Iterator[None]:
    for folder in (cfg.state_dir, cfg.logs_dir, cfg.run_dir):
        folder.mkdir(parents=True, exist_ok=True)
    with (cfg.run_dir / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
