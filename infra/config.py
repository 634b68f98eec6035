"""Where the local stack keeps its data and which loopback ports it listens on."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from omnihub import REPO_ROOT

DEFAULT_STATE_DIR = REPO_ROOT / ".omnihub"
HOST = "127.0.0.1"

_PORT_FIELDS = (
    "kafka_port",
    "kafka_controller_port",
    "postgres_port",
    "redis_port",
    "temporal_port",
    "temporal_http_port",
    "temporal_metrics_port",
    "api_port",
    "chain_port",
)


@dataclass(frozen=True)
class StackConfig:
    """One stack: a state folder that survives restarts and a set of loopback ports.

    Two stacks with different state folders and ports (e.g. dev and test) can run side
    by side; ``with_offset`` derives the second from the first.
    """

    state_dir: Path = DEFAULT_STATE_DIR
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    postgres_port: int = 5432
    redis_port: int = 6379
    temporal_port: int = 7233
    temporal_http_port: int = 7243
    temporal_metrics_port: int = 7244
    api_port: int = 8000
    chain_port: int = 8545

    @classmethod
    def from_env(cls) -> StackConfig:
        """Defaults, moved by ``OMNIHUB_STATE_DIR`` and ``OMNIHUB_STACK_PORT_OFFSET``."""
        state_dir = Path(os.environ.get("OMNIHUB_STATE_DIR") or DEFAULT_STATE_DIR)
        raw_offset = os.environ.get("OMNIHUB_STACK_PORT_OFFSET") or "0"
        try:
            offset = int(raw_offset)
        except ValueError:
            raise ValueError(
                f"OMNIHUB_STACK_PORT_OFFSET must be an integer, got {raw_offset!r}"
            ) from None
        return cls().with_offset(offset, state_dir)

    def with_offset(self, offset: int, state_dir: Path) -> StackConfig:
        """This config with every port moved by ``offset`` and data kept in ``state_dir``."""
        moved = {name: getattr(self, name) + offset for name in _PORT_FIELDS}
        for name, port in moved.items():
            if not 0 < port < 65536:
                raise ValueError(f"{name} {port} is out of range (offset {offset})")
        return dataclasses.replace(self, state_dir=state_dir.resolve(), **moved)

    def client_env(self) -> dict[str, str]:
        """The ``OMNIHUB_*`` variables that point OmniHub's settings at this stack."""
        return {
            "OMNIHUB_KAFKA_BOOTSTRAP": f"{HOST}:{self.kafka_port}",
            "OMNIHUB_POSTGRES_DSN": f"postgresql://omnihub@{HOST}:{self.postgres_port}/omnihub",
            "OMNIHUB_REDIS_URL": f"redis://{HOST}:{self.redis_port}/0",
            "OMNIHUB_TEMPORAL_ADDRESS": f"{HOST}:{self.temporal_port}",
            "OMNIHUB_STATE_DIR": str(self.state_dir),
            "OMNIHUB_API_PORT": str(self.api_port),
            "OMNIHUB_CHAIN_RPC_URL": f"http://{HOST}:{self.chain_port}",
        }

    @property
    def logs_dir(self) -> Path:
        """One ``<service>.log`` per service: its stdout and stderr."""
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        """One ``<service>.pid`` per service started by this stack."""
        return self.state_dir / "run"
