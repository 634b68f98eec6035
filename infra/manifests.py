"""Render ``deploy/kubernetes/`` (a kustomize base) from ``deploy/values.yaml``.

``python -m infra.manifests`` writes the files; ``--check`` only says whether they are
current (CI runs the same check as a test). Plain YAML comes out, so ``kubectl apply -k
deploy/kubernetes`` needs no template engine; the values file is the one place that
says what runs (commands, replicas, resources, autoscaling, secrets by reference).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infra.manifests_backing import backing_resources
from omnihub import REPO_ROOT

VALUES = REPO_ROOT / "deploy" / "values.yaml"
OUT_DIR = REPO_ROOT / "deploy" / "kubernetes"
PART_OF = "omnihub"
METRICS_PORT_NAME = "metrics"

Doc = dict[str, Any]


def load_values(path: Path = VALUES) -> Doc:
    """The values file as a mapping."""
    data: Doc = yaml.safe_load(path.read_text())
    return data


def labels(component: str) -> dict[str, str]:
    """The labels every object of one component carries (and selects on)."""
    return {"app.kubernetes.io/part-of": PART_OF, "app.kubernetes.io/component": component}


def _meta(name: str, component: str) -> Doc:
    return {"name": name, "labels": labels(component)}


def config_map(values: Doc) -> Doc:
    """The non-secret settings every process reads."""
    data = {key: str(value) for key, value in values["env"].items()}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta("omnihub-config", "config"),
        "data": data,
    }


def _secret_env(values: Doc) -> list[Doc]:
    env = []
    for name, ref in values["secretEnv"].items():
        key_ref: Doc = {"name": ref["secret"], "key": ref["key"]}
        if ref.get("optional"):
            key_ref["optional"] = True
        env.append({"name": name, "valueFrom": {"secretKeyRef": key_ref}})
    return env


def _probes(values: Doc, spec: Mapping[str, Any]) -> Doc:
    """HTTP processes: ready when /health says every dependency answers, alive while
    the port accepts (a restart would not bring Kafka back). Others: ready once they
    touched the ready file (omnihub.readiness); alive while the process runs."""
    if "port" in spec:
        return {
            "startupProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 2,
                             "failureThreshold": 60},
            "readinessProbe": {"httpGet": {"path": "/health", "port": "http"},
                               "periodSeconds": 10, "timeoutSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 20},
        }  # fmt: skip
    ready = ["test", "-f", values["readyFile"]]
    return {
        "startupProbe": {"exec": {"command": ready}, "periodSeconds": 2, "failureThreshold": 150},
        "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 10},
    }


def _container(values: Doc, name: str, spec: Mapping[str, Any]) -> Doc:
    metrics_port = int(values["env"]["OMNIHUB_METRICS_PORT"])
    ports = [{"name": "http", "containerPort": spec["port"]}] if "port" in spec else []
    if "port" not in spec:  # the API serves /metrics on its HTTP port
        ports.append({"name": METRICS_PORT_NAME, "containerPort": metrics_port})
    env = [{"name": "OMNIHUB_READY_FILE", "value": values["readyFile"]}]
    return {
        "name": name,
        "image": values["image"],
        "imagePullPolicy": values["imagePullPolicy"],
        "command": [str(part) for part in spec["command"]],
        "ports": ports,
        "envFrom": [{"configMapRef": {"name": "omnihub-config"}}],
        "env": env + _secret_env(values),
        "resources": spec["resources"],
        # The Dockerfile's user by number: Kubernetes cannot check a user name is not root.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": values["runAsUser"],
            "allowPrivilegeEscalation": False,
        },
        **_probes(values, spec),
    }


def deployment(values: Doc, name: str, spec: Mapping[str, Any]) -> Doc:
    """One process: its Deployment, spread over nodes."""
    pod_spec = {
        "containers": [_container(values, name, spec)],
        "terminationGracePeriodSeconds": 30,
        "topologySpreadConstraints": [{
            "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": labels(name)},
        }],
    }  # fmt: skip
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(f"omnihub-{name}", name),
        "spec": {
            "replicas": spec["replicas"],
            "selector": {"matchLabels": labels(name)},
            "template": {"metadata": {"labels": labels(name)}, "spec": pod_spec},
        },
    }


def service(name: str, port: int) -> Doc:
    """The ClusterIP Service in front of an HTTP process."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(f"omnihub-{name}", name),
        "spec": {
            "selector": labels(name),
            "ports": [{"name": "http", "port": port, "targetPort": "http"}],
        },
    }


def disruption_budget(name: str, min_available: int) -> Doc:
    """How many pods a voluntary disruption (a node drain) must leave running."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(f"omnihub-{name}", name),
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": labels(name)}},
    }


def _trigger(values: Doc, rule: Mapping[str, Any]) -> Doc:
    if "kafka" in rule:
        kafka = rule["kafka"]
        return {"type": "kafka", "metadata": {
            "bootstrapServers": values["env"]["OMNIHUB_KAFKA_BOOTSTRAP"],
            "consumerGroup": kafka["consumerGroup"], "topic": kafka["topic"],
            "lagThreshold": str(kafka["lagThreshold"]), "offsetResetPolicy": "earliest",
        }}  # fmt: skip
    temporal = rule["temporal"]
    return {"type": "temporal", "metadata": {
        "endpoint": values["env"]["OMNIHUB_TEMPORAL_ADDRESS"],
        "namespace": values["env"]["OMNIHUB_TEMPORAL_NAMESPACE"],
        "taskQueue": temporal["taskQueue"], "targetQueueSize": str(temporal["targetQueueSize"]),
    }}  # fmt: skip


def scaled_object(values: Doc, name: str, rule: Mapping[str, Any]) -> Doc:
    """KEDA scales the Deployment on its lag (Kafka consumer lag or Temporal backlog)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": _meta(f"omnihub-{name}", name),
        "spec": {
            "scaleTargetRef": {"name": f"omnihub-{name}"},
            "minReplicaCount": rule["minReplicas"],
            "maxReplicaCount": rule["maxReplicas"],
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [_trigger(values, rule)],
        },
    }


def process_resources(values: Doc, name: str) -> list[Doc]:
    """Everything one process needs, in apply order."""
    spec = values["processes"][name]
    docs = [deployment(values, name, spec)]
    if "port" in spec:
        docs.append(service(name, spec["port"]))
    docs.append(disruption_budget(name, spec["minAvailable"]))
    if "autoscale" in spec:
        docs.append(scaled_object(values, name, spec["autoscale"]))
    return docs


def render(values: Doc) -> dict[str, list[Doc]]:
    """File name -> the objects in it, ``kustomization.yaml`` included."""
    files: dict[str, list[Doc]] = {"config.yaml": [config_map(values)]}
    for name in values["processes"]:
        files[f"{name}.yaml"] = process_resources(values, name)
    files.update(backing_resources(values))
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": values["namespace"],
        "resources": sorted(files),
    }
    return {"kustomization.yaml": [kustomization], **files}


class _PlainDumper(yaml.SafeDumper):  # type: ignore[misc]
    """Writes a repeated list out again instead of as a YAML anchor and alias."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump(docs: list[Doc]) -> str:
    """Objects as one YAML stream, keys in the order they were built."""
    header = "# Rendered by `python -m infra.manifests` from deploy/values.yaml: do not edit.\n"
    return header + "---\n".join(
        yaml.dump(d, Dumper=_PlainDumper, sort_keys=False, width=100) for d in docs
    )


def stale_files(values: Doc, out_dir: Path = OUT_DIR) -> list[str]:
    """The rendered files that are missing, differ, or should no longer be there."""
    wanted = {name: dump(docs) for name, docs in render(values).items()}
    present = {p.name for p in out_dir.glob("*.yaml")} if out_dir.exists() else set()
    differ = [n for n, text in wanted.items() if not (out_dir / n).exists()
              or (out_dir / n).read_text() != text]  # fmt: skip
    return sorted(set(differ) | (present - set(wanted)))


def write(values: Doc, out_dir: Path = OUT_DIR) -> None:
    """Write every rendered file and remove leftovers."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rendered = render(values)
    for stale in set(p.name for p in out_dir.glob("*.yaml")) - set(rendered):
        (out_dir / stale).unlink()
    for name, docs in rendered.items():
        (out_dir / name).write_text(dump(docs))


def main(argv: list[str] | None = None) -> int:
    """Render (default) or ``--check`` that the rendered files are current."""
    parser = argparse.ArgumentParser(prog="python -m infra.manifests", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if any file is stale")
    args = parser.parse_args(argv)
    values = load_values()
    if args.check:
        stale = stale_files(values)
        for name in stale:
            print(f"stale: deploy/kubernetes/{name}", file=sys.stderr)
        return 1 if stale else 0
    write(values)
    return 0


if __name__ == "__main__":
    sys.exit(main())
