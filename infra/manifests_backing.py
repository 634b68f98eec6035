"""The backing services as their Kubernetes operators expect them (``infra.manifests``).

- Kafka: Strimzi (``Kafka`` in KRaft mode + one ``KafkaNodePool`` of three nodes that are
  brokers and controllers, like the local 3-broker stack), and one ``KafkaTopic`` per
  topic of ``streams.topics``, so partitions, replication and retention are declared once.
- Postgres: a CloudNativePG ``Cluster`` whose image ships pgvector; ``vector`` is created
  in the application database, as ``infra/postgres_service.py`` does locally.
- Redis: a StatefulSet with the same append-only settings as the local stack.
- Temporal: its Helm chart, values in ``deploy/temporal-values.yaml``.
"""

from __future__ import annotations

from typing import Any

from infra.config import StackConfig
from infra.kafka_service import cluster_properties
from omnihub.settings import Settings
from streams.topics import topic_specs

Doc = dict[str, Any]

KAFKA_CLIENT_PORT = 9092
POSTGRES_PORT = 5432
REDIS_PORT = 6379
# The cluster-wide settings the local 3-broker stack sets too (infra/kafka_service.py).
REPLICATED_KEYS = (
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "default.replication.factor",
    "min.insync.replicas",
)


def _labels(component: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": "omnihub", "app.kubernetes.io/component": component}


def topic_settings(values: Doc) -> Settings:
    """The settings the processes run with in the cluster (the values' env); built
    without reading this machine's environment, so the render is the same anywhere."""
    env = values["env"]
    return Settings.model_construct(
        topic_prefix=env["OMNIHUB_TOPIC_PREFIX"],
        topic_partitions=int(env["OMNIHUB_TOPIC_PARTITIONS"]),
        topic_replication=int(env["OMNIHUB_TOPIC_REPLICATION"]),
        topic_min_insync=int(env["OMNIHUB_TOPIC_MIN_INSYNC"]),
    )


def kafka_cluster(values: Doc) -> list[Doc]:
    """Strimzi's Kafka and its node pool: three KRaft nodes, brokers and controllers."""
    kafka = values["kafka"]
    local = cluster_properties(StackConfig(kafka_brokers=3))
    config = {key: int(local[key]) for key in REPLICATED_KEYS}
    cluster_label = {"strimzi.io/cluster": kafka["cluster"], **_labels("kafka")}
    pool = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "KafkaNodePool",
        "metadata": {"name": "dual-role", "labels": cluster_label},
        "spec": {
            "replicas": kafka["replicas"],
            "roles": ["controller", "broker"],
            "storage": {"type": "jbod", "volumes": [{
                "id": 0, "type": "persistent-claim", "size": kafka["storage"],
                "deleteClaim": False, "kraftMetadata": "shared",
            }]},
        },
    }  # fmt: skip
    cluster = {
        "apiVersion": "kafka.strimzi.io/v1beta2",
        "kind": "Kafka",
        "metadata": {
            "name": kafka["cluster"],
            "labels": _labels("kafka"),
            "annotations": {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"},
        },
        "spec": {
            "kafka": {
                "version": kafka["version"],
                "listeners": [{"name": "plain", "port": KAFKA_CLIENT_PORT,
                               "type": "internal", "tls": False}],
                "config": {**config, "auto.create.topics.enable": False,
                           "num.partitions": int(values["env"]["OMNIHUB_TOPIC_PARTITIONS"])},
            },
            "entityOperator": {"topicOperator": {}},
        },
    }  # fmt: skip
    return [pool, cluster]


def kafka_topics(values: Doc) -> list[Doc]:
    """One KafkaTopic per declared topic, for Strimzi's topic operator."""
    cluster = values["kafka"]["cluster"]
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1beta2",
            "kind": "KafkaTopic",
            "metadata": {
                "name": spec.name.replace(".", "-"),
                "labels": {"strimzi.io/cluster": cluster, **_labels("kafka")},
            },
            "spec": {
                "topicName": spec.name,
                "partitions": spec.partitions,
                "replicas": spec.replication,
                "config": dict(spec.config),
            },
        }
        for spec in topic_specs(topic_settings(values))
    ]


def postgres_cluster(values: Doc) -> Doc:
    """CloudNativePG: the ``omnihub`` database owned by ``omnihub``, with pgvector."""
    pg = values["postgres"]
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": pg["cluster"], "labels": _labels("postgres")},
        "spec": {
            "instances": pg["instances"],
            "imageName": pg["image"],
            "storage": {"size": pg["storage"]},
            "bootstrap": {"initdb": {
                "database": "omnihub", "owner": "omnihub",
                "postInitApplicationSQL": ["CREATE EXTENSION IF NOT EXISTS vector"],
            }},
            "monitoring": {"enablePodMonitor": False},
        },
    }  # fmt: skip


def temporal_postgres(values: Doc) -> Doc:
    """A second CloudNativePG cluster for Temporal's persistence and visibility stores
    (deploy/temporal-values.yaml points the Temporal chart at it)."""
    pg = values["postgres"]
    return {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "temporal-pg", "labels": _labels("temporal-postgres")},
        "spec": {
            "instances": pg["instances"],
            "imageName": pg["image"],
            "storage": {"size": pg["storage"]},
            "bootstrap": {"initdb": {
                "database": "temporal", "owner": "temporal",
                "postInitSQL": ["CREATE DATABASE temporal_visibility OWNER temporal"],
            }},
        },
    }  # fmt: skip


def redis(values: Doc) -> list[Doc]:
    """One Redis with the local stack's persistence (AOF, fsync every second)."""
    image = values["redis"]["image"]
    container = {
        "name": "redis", "image": image,
        "command": ["redis-server", "--appendonly", "yes", "--appendfsync", "everysec"],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT}],
        "readinessProbe": {"exec": {"command": ["redis-cli", "ping"]}, "periodSeconds": 5},
        "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 20},
        "resources": {"requests": {"cpu": "200m", "memory": "512Mi"},
                      "limits": {"memory": "2Gi"}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
    }  # fmt: skip
    claim = {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": values["redis"]["storage"]}}},
    }  # fmt: skip
    selector = _labels("redis")
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "omnihub-redis", "labels": selector},
        "spec": {
            "serviceName": "omnihub-redis",
            "replicas": 1,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": selector}, "spec": {"containers": [container]}},
            "volumeClaimTemplates": [claim],
        },
    }
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "omnihub-redis", "labels": selector},
        "spec": {"selector": selector,
                 "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis"}]},
    }  # fmt: skip
    return [stateful_set, svc]


def backing_resources(values: Doc) -> dict[str, list[Doc]]:
    """File name -> objects, for the operators' custom resources and Redis."""
    return {
        "backing-kafka.yaml": [*kafka_cluster(values), *kafka_topics(values)],
        "backing-postgres.yaml": [postgres_cluster(values), temporal_postgres(values)],
        "backing-redis.yaml": redis(values),
    }
