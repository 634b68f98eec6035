"""Apache Kafka 4.3 in KRaft combined mode: each node is a broker and a controller.

The jars come from Maven Central via ``infra/kafka/pom.xml`` (``infra/setup.sh`` fetches
them); Java 17 runs ``kafka.Kafka`` with a ``server.properties`` generated into the state
folder. The data folder is formatted once, on the first start.

One node is the default. ``StackConfig(kafka_brokers=3)`` (``omnihub stack up --brokers
3``) runs three on loopback with a static quorum of three voters: internal topics are
replicated three times, and OmniHub's topics get replication 3 and
``min.insync.replicas=2`` through ``StackConfig.client_env()``. A node of a cluster
cannot serve alone (it needs a quorum), so the first two count as started once their
controller listens, and the last one once every broker serves requests.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from infra.config import BROKERS_FILE, HOST, StackConfig
from infra.probes import kafka_api_versions, tcp_open
from infra.process import tail
from infra.services import ServiceSpec, StackError

KAFKA_HOME = Path(__file__).resolve().parent / "kafka"
LIB_DIR = KAFKA_HOME / "target" / "lib"
LOG4J_CONFIG = KAFKA_HOME / "log4j2.properties"
POM = KAFKA_HOME / "pom.xml"
HEAP = ("-Xms256m", "-Xmx1g")


def kafka_dir(cfg: StackConfig, node: int = 1) -> Path:
    """``<state>/kafka`` (``kafka-N`` for node N > 1): ``server.properties`` and ``data``."""
    return cfg.state_dir / service_name(node)


def service_name(node: int) -> str:
    """``kafka`` for the first node, ``kafka-N`` for the others."""
    return "kafka" if node == 1 else f"kafka-{node}"


def server_properties(cfg: StackConfig, node: int = 1) -> dict[str, str]:
    """Node ``node``'s configuration for this stack, mirrored by ``docker-compose.yml``."""
    port, controller_port = cfg.kafka_ports(node)
    ctrl = f"{HOST}:{controller_port}"
    plain = f"{HOST}:{port}"
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node),
        "controller.quorum.bootstrap.servers": ctrl,
        "listeners": f"PLAINTEXT://{plain},CONTROLLER://{ctrl}",
        "advertised.listeners": f"PLAINTEXT://{plain}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(kafka_dir(cfg, node) / "data"),
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "num.partitions": "6",
    }
    if cfg.kafka_brokers == 1:
        return props
    del props["controller.quorum.bootstrap.servers"]  # a cluster names its voters
    return props | cluster_properties(cfg)


def cluster_properties(cfg: StackConfig) -> dict[str, str]:
    """What a replicated cluster changes: a static quorum, and every internal topic on
    three brokers, acknowledged by two (what ``deploy/`` sets for Strimzi too)."""
    voters = ",".join(
        f"{n}@{HOST}:{cfg.kafka_ports(n)[1]}" for n in range(1, cfg.kafka_brokers + 1)
    )
    replicated = {
        "offsets.topic.replication.factor": "3",
        "transaction.state.log.replication.factor": "3",
        "transaction.state.log.min.isr": "2",
        "share.coordinator.state.topic.replication.factor": "3",
        "share.coordinator.state.topic.min.isr": "2",
        "default.replication.factor": "3",
        "min.insync.replicas": "2",
    }
    # A killed broker is fenced (and its partitions get new leaders) after this long
    # without a heartbeat; the default 9 s would be the write pause for its partitions.
    fencing = {"broker.session.timeout.ms": "5000", "broker.heartbeat.interval.ms": "1000"}
    return {"controller.quorum.voters": voters, **replicated, **fencing}


def lib_dir() -> Path:
    """Where Kafka's jars are: ``OMNIHUB_KAFKA_LIB_DIR``, a checkout's ``target/lib``
    (``infra/setup.sh`` fills it), or, for an installed package, a cache folder filled
    from Maven Central with the packaged ``pom.xml`` on first use."""
    if env := os.environ.get("OMNIHUB_KAFKA_LIB_DIR"):
        return Path(env)
    if any(LIB_DIR.glob("kafka_2.13-*.jar")):
        return LIB_DIR
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
    cached = Path.home() / ".cache" / "omnihub" / f"kafka-lib-{digest}"
    if not any(cached.glob("kafka_2.13-*.jar")):
        mvn = shutil.which("mvn")
        if mvn is None:
            raise StackError("kafka", "no Kafka jars and no Maven: run infra/setup.sh")
        subprocess.run(
            [mvn, "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
             f"-DoutputDirectory={cached}"],
            check=True, capture_output=True,
        )  # fmt: skip
    return cached


def _java() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise StackError("kafka", "java not found: install a Java 17 runtime")
    return found


def _java_argv(*args: str) -> list[str]:
    return [
        _java(),
        *HEAP,
        "-Djava.awt.headless=true",
        "-XX:+ExitOnOutOfMemoryError",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{lib_dir()}/*",  # java expands the wildcard itself
        *args,
    ]


def _cluster_id() -> str:
    """A random Kafka Uuid in its base64 form (what ``StorageTool random-uuid`` prints)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka rejects ids that look like a CLI flag
            return text


def _shared_cluster_id(cfg: StackConfig) -> str:
    """One id for every node of the stack, kept beside the first node's data."""
    path = kafka_dir(cfg) / "cluster.id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_cluster_id() + "\n")
    return path.read_text().strip()


def _check_size(cfg: StackConfig) -> None:
    """Refuse to start a node of a cluster formatted for another number of brokers."""
    recorded = cfg.state_dir / BROKERS_FILE
    formatted = int(recorded.read_text()) if recorded.exists() else None
    if (kafka_dir(cfg) / "data" / "meta.properties").exists():
        formatted = formatted or 1  # formatted before the count was recorded
    if formatted is not None and formatted != cfg.kafka_brokers:
        raise StackError(
            "kafka",
            f"{cfg.state_dir} holds a {formatted}-broker Kafka, not {cfg.kafka_brokers}: "
            f"use --brokers {formatted}, or stop the stack and delete "
            f"{kafka_dir(cfg)}* to start anew",
        )
    recorded.parent.mkdir(parents=True, exist_ok=True)
    recorded.write_text(f"{cfg.kafka_brokers}\n")


def _prepare(cfg: StackConfig, node: int) -> None:
    if not any(lib_dir().glob("kafka_2.13-*.jar")):
        raise StackError("kafka", f"no Kafka jars in {lib_dir()}: run infra/setup.sh")
    _check_size(cfg)
    folder = kafka_dir(cfg, node)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    props = folder / "server.properties"
    lines = [f"{key}={value}" for key, value in server_properties(cfg, node).items()]
    props.write_text(
        "# Generated by infra/kafka_service.py; edits are overwritten.\n" + "\n".join(lines) + "\n"
    )
    if not (folder / "data" / "meta.properties").exists():
        # One node bootstraps a dynamic quorum of itself; a cluster has static voters.
        flags = ["--standalone"] if cfg.kafka_brokers == 1 else []
        cluster_id = _cluster_id() if cfg.kafka_brokers == 1 else _shared_cluster_id(cfg)
        _format(props, cluster_id, flags, cfg.logs_dir / f"{service_name(node)}.log")


def _format(props: Path, cluster_id: str, flags: list[str], log_path: Path) -> None:
    argv = _java_argv(
        "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props), *flags
    )
    with log_path.open("ab") as log:
        result = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            check=False,
        )
    if result.returncode != 0:
        raise StackError("kafka", "formatting the KRaft storage failed", tail(log_path))


def _healthy(cfg: StackConfig, node: int) -> bool:
    if cfg.kafka_brokers == 1:
        return kafka_api_versions(cfg.kafka_port)
    if node < cfg.kafka_brokers:  # waits for the others to form a quorum
        return tcp_open(cfg.kafka_ports(node)[1])
    nodes = range(1, cfg.kafka_brokers + 1)
    return all(kafka_api_versions(cfg.kafka_ports(n)[0]) for n in nodes)


def broker(node: int) -> ServiceSpec:
    """The service running KRaft node ``node``; nodes past ``cfg.kafka_brokers`` are off."""
    return ServiceSpec(
        name=service_name(node),
        argv=lambda cfg: _java_argv("kafka.Kafka", str(kafka_dir(cfg, node) / "server.properties")),
        endpoint=lambda cfg: f"{HOST}:{cfg.kafka_ports(node)[0]}",
        health=lambda cfg: _healthy(cfg, node),
        ports=lambda cfg: cfg.kafka_ports(node),
        prepare=lambda cfg: _prepare(cfg, node),
        enabled=lambda cfg: node <= cfg.kafka_brokers,
        start_timeout_s=120.0,
        stop_grace_s=30.0,
    )


KAFKA = broker(1)
KAFKA_SERVICES: tuple[ServiceSpec, ...] = (KAFKA, broker(2), broker(3))
"""Every node a stack may run, in start order; a one-broker stack runs only ``kafka``."""
