"""OmniHub's own processes, run by the local stack after the servers they depend on.

Every process of :data:`streams.topology.PROCESSES` becomes a ``ServiceSpec``:
``omnihub stack up`` starts it (``python -m apps.cli <process> run``) after Kafka,
Postgres, Redis and Temporal are healthy (``down`` stops it first), logs to
``<state>/logs/<name>.log`` and hands it ``cfg.client_env()``, so its settings point at
the same stack (dev or test). Processes that must not be part of every ``up`` (or tests
that need a throwaway service) can instead call ``infra.stack.register_service(spec)``
at run time.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from infra.config import HOST, StackConfig
from infra.probes import tcp_open
from infra.services import ServiceSpec
from omnihub import REPO_ROOT
from omnihub.metric_names import LOCAL_METRICS_PORTS, METRICS_PORT_ENV
from omnihub.readiness import READY_FILE_ENV
from streams.topology import PROCESSES

# What OmniHub's processes run: its packages, the contract and the dependency pins.
CODE = ("omnihub", "domain", "streams", "projections", "sagas", "api", "apps", "infra", "schemas")


def code_version(cfg: StackConfig | None = None) -> str:
    """A hash of the code the processes would run now, so ``up`` after a pull or an edit
    replaces processes still running the old code rather than reporting them running."""
    digest = hashlib.sha256()
    files = [REPO_ROOT / "pyproject.toml"]
    for folder in CODE:
        files += (REPO_ROOT / folder).rglob("*.py")
        files += (REPO_ROOT / folder).rglob("*.avsc")
        files += (REPO_ROOT / folder).rglob("*.sql")
    # The web3 adapter and its ABI, not contracts/node_modules (the tools, thousands of files).
    files += (REPO_ROOT / "contracts").glob("*.py")
    files += (REPO_ROOT / "contracts" / "artifacts").glob("*.json")
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def config_version(cfg: StackConfig) -> str:
    """A hash of the configuration a process would start with now: this shell's
    ``OMNIHUB_*``, ``OTEL_*``, ``LOG_LEVEL`` and provider variables, the stack's client
    environment and ``.env``. ``up`` replaces a process whose configuration changed."""
    digest = hashlib.sha256()
    env = {
        k: v for k, v in os.environ.items()
        if k.startswith(("OMNIHUB_", "OTEL_", "LOG_LEVEL")) or k.endswith("_API_KEY")
    }  # fmt: skip
    for key, value in sorted({**env, **cfg.client_env()}.items()):
        digest.update(f"{key}={value}\0".encode())
    dotenv = REPO_ROOT / ".env"
    if dotenv.exists():
        digest.update(dotenv.read_bytes())
    return digest.hexdigest()[:16]


def running_version(cfg: StackConfig) -> str:
    """What a running process is compared on: its code and its configuration."""
    return f"{code_version(cfg)}-{config_version(cfg)}"


def _ready_file(cfg: StackConfig, name: str) -> Path:
    return cfg.run_dir / f"{name}.ready"


def processor(name: str, argv: Sequence[str], endpoint: str) -> ServiceSpec:
    """A process with no port: healthy once it marks itself ready (omnihub.readiness),
    so one that dies while starting fails ``up`` with its log tail."""

    def prepare(cfg: StackConfig) -> None:
        _ready_file(cfg, name).unlink(missing_ok=True)

    return ServiceSpec(
        name=name,
        argv=lambda cfg: [sys.executable, *argv],
        endpoint=lambda cfg: endpoint.format(
            host=HOST, kafka=cfg.kafka_port, temporal=cfg.temporal_port
        ),
        health=lambda cfg: _ready_file(cfg, name).exists(),
        prepare=prepare,
        env=lambda cfg: {READY_FILE_ENV: str(_ready_file(cfg, name)), **_metrics_env(cfg, name)},
        start_timeout_s=120.0,  # the worker and plan cache load the embedding model first
        version=running_version,
    )


def _metrics_env(cfg: StackConfig, name: str) -> dict[str, str]:
    """The process's own /metrics port, moved by the stack's port offset."""
    if name not in LOCAL_METRICS_PORTS:
        return {}
    offset = cfg.api_port - StackConfig.api_port
    return {METRICS_PORT_ENV: str(LOCAL_METRICS_PORTS[name] + offset)}


def omnihub(process: str, *extra: str) -> list[str]:
    """``-m apps.cli <process> run ...``: how the stack starts an OmniHub process."""
    return ["-m", "apps.cli", process, "run", *extra]


API = ServiceSpec(
    name="api",
    argv=lambda cfg: [sys.executable, *omnihub("api", "--host", HOST, "--port", str(cfg.api_port))],
    endpoint=lambda cfg: f"http://{HOST}:{cfg.api_port}",
    health=lambda cfg: tcp_open(cfg.api_port),
    ports=lambda cfg: (cfg.api_port,),
    version=running_version,
)
_ENDPOINTS = {"worker": "temporal://{host}:{temporal}"}
# Static membership: a restarted projector owns its partitions again without a rebalance.
_EXTRA = {"projector": ("--instance-id", "projector-1")}

SERVICES: tuple[ServiceSpec, ...] = tuple(
    API
    if name == "api"
    else processor(
        name, omnihub(name, *_EXTRA.get(name, ())), _ENDPOINTS.get(name, "kafka://{host}:{kafka}")
    )
    for name in PROCESSES
)
