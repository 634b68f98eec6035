"""infra/observability/: the alert rules fire on recorded series as intended, and every
rule and dashboard query uses only metrics declared in omnihub/metric_names.py.

The rules are tested with Prometheus' own ``promtool test rules`` (infra/setup.sh
installs promtool with ``go install``); ``promtool check`` also validates the rule and
scrape files.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import yaml

from infra.observability import dashboard
from infra.observability.promtool import promtool_path
from omnihub import REPO_ROOT
from omnihub.metric_names import ALL, series_names

HERE = REPO_ROOT / "infra" / "observability"
DECLARED = {name for metric in ALL for name in series_names(metric)}
BUILT_IN = {"up"}  # what Prometheus itself records per target
METRIC = re.compile(r"\b(omnihub_[a-z0-9_]+|up)\b(?!\s*\()")


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((HERE / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    model = json.loads((HERE / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in model["panels"] for target in panel["targets"]]


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(promtool_path()), *args],
        cwd=HERE,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_alert_rules_pass_their_promtool_tests() -> None:
    result = _promtool("test", "rules", "tests/alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_rule_and_scrape_files_pass_promtool_check() -> None:
    rules = _promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in rules.stdout
    config = _promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr


def test_every_alert_is_tested() -> None:
    tests = yaml.safe_load((HERE / "tests" / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == {rule["alert"] for rule in _rules()}


def test_rules_and_dashboard_use_only_declared_metrics() -> None:
    exprs = [rule["expr"] for rule in _rules()] + _dashboard_exprs()
    used = {name for expr in exprs for name in METRIC.findall(expr)}
    assert used - DECLARED - BUILT_IN == set()
    # Every declared family shows up on the dashboard.
    on_dashboard = {name for expr in _dashboard_exprs() for name in METRIC.findall(expr)}
    assert [m.name for m in ALL if not set(series_names(m)) & on_dashboard] == []


def test_metric_names_follow_prometheus_conventions_and_are_documented() -> None:
    doc = (HERE / "METRICS.md").read_text()
    for metric in ALL:
        assert re.fullmatch(r"omnihub_[a-z_]+", metric.name), metric.name
        assert metric.name.endswith("_total") == (metric.kind == "counter"), metric.name
        if metric.kind == "histogram":
            assert metric.name.endswith("_seconds"), metric.name
        assert f"`{metric.name}`" in doc, f"{metric.name} is missing from METRICS.md"
    assert len({m.name for m in ALL}) == len(ALL)


def test_the_dashboard_file_is_current() -> None:
    assert (HERE / "grafana-dashboard.json").read_text() == dashboard.render(), (
        "run: python -m infra.observability.dashboard"
    )


def test_scrape_config_reads_the_rule_file() -> None:
    config = yaml.safe_load((HERE / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert {"omnihub-local", "omnihub-kubernetes"} <= jobs
