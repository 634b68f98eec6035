"""Where the local stack keeps its data and which loopback ports it listens on."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from omnihub import HOME

DEFAULT_STATE_DIR = HOME / ".omnihub"
HOST = "127.0.0.1"
KAFKA_BROKER_CHOICES = (1, 3)
BROKERS_ENV = "OMNIHUB_STACK_BROKERS"
BROKERS_FILE = Path("kafka") / "brokers"  # in the state folder: the size it was formatted for

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
    # 1, or 3 for a replicated KRaft cluster; broker N listens on kafka_port + 2(N-1)
    # and its controller on kafka_controller_port + 2(N-1), so offsets move them too.
    kafka_brokers: int = 1

    def __post_init__(self) -> None:
        if self.kafka_brokers not in KAFKA_BROKER_CHOICES:
            raise ValueError(
                f"kafka_brokers must be one of {KAFKA_BROKER_CHOICES}, got {self.kafka_brokers}"
            )

    @classmethod
    def from_env(cls) -> StackConfig:
        """Defaults, moved by ``OMNIHUB_STATE_DIR`` and ``OMNIHUB_STACK_PORT_OFFSET``.

        The broker count is ``OMNIHUB_STACK_BROKERS``, else the count the state folder's
        Kafka was formatted for (so ``down`` and ``status`` find every broker), else 1.
        """
        state_dir = Path(os.environ.get("OMNIHUB_STATE_DIR") or DEFAULT_STATE_DIR)
        raw_offset = os.environ.get("OMNIHUB_STACK_PORT_OFFSET") or "0"
        try:
            offset = int(raw_offset)
        except ValueError:
            raise ValueError(
                f"OMNIHUB_STACK_PORT_OFFSET must be an integer, got {raw_offset!r}"
            ) from None
        brokers = _brokers(os.environ.get(BROKERS_ENV), state_dir / BROKERS_FILE)
        return cls(kafka_brokers=brokers).with_offset(offset, state_dir)

    def with_offset(self, offset: int, state_dir: Path) -> StackConfig:
        """This config with every port moved by ``offset`` and data kept in ``state_dir``."""
        moved = {name: getattr(self, name) + offset for name in _PORT_FIELDS}
        last = 2 * (self.kafka_brokers - 1)  # the extra brokers sit above the first
        moved_extra = {"last kafka broker port": moved["kafka_controller_port"] + last}
        for name, port in (moved | moved_extra).items():
            if not 0 < port < 65536:
                raise ValueError(f"{name} {port} is out of range (offset {offset})")
        return dataclasses.replace(self, state_dir=state_dir.resolve(), **moved)

    def kafka_ports(self, node: int) -> tuple[int, int]:
        """Broker ``node``'s (1-based) client and controller ports."""
        step = 2 * (node - 1)
        return self.kafka_port + step, self.kafka_controller_port + step

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker's address, comma-separated, as Kafka clients take it."""
        nodes = range(1, self.kafka_brokers + 1)
        return ",".join(f"{HOST}:{self.kafka_ports(n)[0]}" for n in nodes)

    def topic_env(self) -> dict[str, str]:
        """Replication for a cluster: every record on 3 brokers, acknowledged by 2."""
        if self.kafka_brokers == 1:
            return {}  # the settings' defaults (1 and 1) fit a single broker
        return {"OMNIHUB_TOPIC_REPLICATION": "3", "OMNIHUB_TOPIC_MIN_INSYNC": "2"}

    def client_env(self) -> dict[str, str]:
        """The ``OMNIHUB_*`` variables that point OmniHub's settings at this stack."""
        return {
            **self.topic_env(),
            "OMNIHUB_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
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


def _brokers(raw: str | None, recorded: Path) -> int:
    if not raw and recorded.exists():
        raw = recorded.read_text().strip()
    try:
        return int(raw or "1")
    except ValueError:
        raise ValueError(f"{BROKERS_ENV} must be 1 or 3, got {raw!r}") from None
