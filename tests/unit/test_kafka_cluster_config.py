"""The 3-broker stack's configuration: ports, quorum, replication and client settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config import StackConfig
from infra.kafka_service import KAFKA_SERVICES, server_properties
from omnihub.settings import Settings

CLUSTER = StackConfig(kafka_brokers=3)


def test_one_broker_stays_the_default_and_sets_no_topic_replication() -> None:
    single = StackConfig()
    assert single.kafka_brokers == 1
    assert single.client_env()["OMNIHUB_KAFKA_BOOTSTRAP"] == "127.0.0.1:9092"
    assert "OMNIHUB_TOPIC_REPLICATION" not in single.client_env()
    props = server_properties(single)
    assert props["offsets.topic.replication.factor"] == "1"
    assert "controller.quorum.voters" not in props
    assert [spec.name for spec in KAFKA_SERVICES if spec.enabled(single)] == ["kafka"]


def test_three_brokers_have_their_own_ports_moved_by_the_offset() -> None:
    moved = CLUSTER.with_offset(30000, Path("/tmp/omnihub-test"))
    assert [moved.kafka_ports(n) for n in (1, 2, 3)] == [
        (39092, 39093),
        (39094, 39095),
        (39096, 39097),
    ]
    assert moved.kafka_bootstrap == "127.0.0.1:39092,127.0.0.1:39094,127.0.0.1:39096"
    assert [spec.name for spec in KAFKA_SERVICES if spec.enabled(moved)] == [
        "kafka",
        "kafka-2",
        "kafka-3",
    ]


def test_every_node_names_the_same_three_voters_and_its_own_id() -> None:
    nodes = [server_properties(CLUSTER, n) for n in (1, 2, 3)]
    assert {p["controller.quorum.voters"] for p in nodes} == {
        "1@127.0.0.1:9093,2@127.0.0.1:9095,3@127.0.0.1:9097"
    }
    assert [p["node.id"] for p in nodes] == ["1", "2", "3"]
    assert nodes[1]["listeners"] == "PLAINTEXT://127.0.0.1:9094,CONTROLLER://127.0.0.1:9095"
    assert len({p["log.dirs"] for p in nodes}) == 3
    for props in nodes:
        assert "controller.quorum.bootstrap.servers" not in props
        assert props["min.insync.replicas"] == "2"
        assert props["offsets.topic.replication.factor"] == "3"


def test_the_cluster_clients_get_replication_3_acknowledged_by_2() -> None:
    env = CLUSTER.client_env()
    settings = Settings.model_validate(
        {
            "topic_replication": env["OMNIHUB_TOPIC_REPLICATION"],
            "topic_min_insync": env["OMNIHUB_TOPIC_MIN_INSYNC"],
        }
    )
    assert (settings.topic_replication, settings.topic_min_insync) == (3, 2)


def test_only_one_or_three_brokers_and_ports_stay_in_range() -> None:
    with pytest.raises(ValueError, match="kafka_brokers"):
        StackConfig(kafka_brokers=2)
    with pytest.raises(ValueError, match="out of range"):
        StackConfig(kafka_brokers=3, kafka_port=65532, kafka_controller_port=65533).with_offset(
            0, Path("/tmp/x")
        )


def test_the_broker_count_comes_from_the_env_else_from_the_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHUB_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("OMNIHUB_STACK_BROKERS", raising=False)
    monkeypatch.delenv("OMNIHUB_STACK_PORT_OFFSET", raising=False)
    assert StackConfig.from_env().kafka_brokers == 1
    (tmp_path / "kafka").mkdir()
    (tmp_path / "kafka" / "brokers").write_text("3\n")
    assert StackConfig.from_env().kafka_brokers == 3
    monkeypatch.setenv("OMNIHUB_STACK_BROKERS", "1")
    assert StackConfig.from_env().kafka_brokers == 1
