"""The layout holds: layers, no import cycles, one topology that the CLI and stack follow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grimp
import httpx
import pytest

from apps.cli import COMMANDS, build_parser
from apps.worker import build_registry
from domain.killswitch import TOOL_NAMES
from infra.platform import SERVICES
from omnihub import REPO_ROOT
from omnihub.lazy import Lazy
from omnihub.settings import Settings
from streams.topology import PROCESSES

PACKAGES = ("apps", "api", "sagas", "projections", "infra", "streams", "omnihub", "domain")


def test_the_layers_contract_holds_with_no_exceptions() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=REPO_ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ignore_imports" not in (REPO_ROOT / "pyproject.toml").read_text()


def _cycles(graph: grimp.ImportGraph) -> list[tuple[str, str]]:
    """Every direct import ``a -> b`` such that ``b`` also reaches ``a``."""
    return sorted(
        (a, b)
        for a in graph.modules
        for b in graph.find_modules_directly_imported_by(a)
        if graph.chain_exists(importer=b, imported=a)
    )


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("x.a", "x.b", "x.c"):
        graph.add_module(module)
    graph.add_import(importer="x.a", imported="x.b")
    graph.add_import(importer="x.b", imported="x.c")
    graph.add_import(importer="x.c", imported="x.a")
    assert len(_cycles(graph)) == 3


def test_no_modules_import_each_other_in_a_circle() -> None:
    assert _cycles(grimp.build_graph(*PACKAGES)) == []


def test_every_process_is_started_through_the_cli_and_by_the_stack() -> None:
    parser = build_parser()
    for name in PROCESSES:
        args = parser.parse_args([name, "run"])
        assert callable(args.handler), name
    assert [s.name for s in SERVICES] == list(PROCESSES)


def test_consumer_names_are_unique() -> None:
    names = [sub.consumer for subs in PROCESSES.values() for sub in subs]
    assert len(names) == len(set(names)) and names


async def test_the_kill_switchable_tools_are_the_registered_ones() -> None:
    async with httpx.AsyncClient() as http:
        registry = build_registry(Lazy(_no_pool), http, Settings())
    assert set(registry.names()) == set(TOOL_NAMES)


async def _no_pool() -> object:
    raise AssertionError("building the registry must not connect")


def _choices(parser: object) -> set[str]:
    actions = [a for a in parser._actions if a.choices]  # type: ignore[attr-defined]
    return set(actions[0].choices)


def test_each_command_is_registered_by_the_module_the_cli_loads_for_it() -> None:
    assert _choices(build_parser()) == set(COMMANDS)
    for command in COMMANDS:
        assert command in _choices(build_parser(command)), command


def test_config_show_redacts_secrets_and_dsn_passwords() -> None:
    from apps.commands.config import redacted

    shown = redacted(
        Settings(
            secret_key="s3cr3t-value",
            llm_api_key="sk-abc",
            postgres_dsn="postgresql://app:hunter2@db:5432/omnihub",
        )
    )
    text = json.dumps(shown)
    assert "s3cr3t-value" not in text and "sk-abc" not in text and "hunter2" not in text
    assert shown["OMNIHUB_POSTGRES_DSN"] == "postgresql://app:***@db:5432/omnihub"
    assert shown["OMNIHUB_KAFKA_BOOTSTRAP"] == Settings().kafka_bootstrap


def test_a_changed_configuration_changes_what_a_running_process_is_compared_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from infra.config import StackConfig
    from infra.platform import running_version

    cfg = StackConfig()
    before = running_version(cfg)
    assert running_version(cfg) == before
    monkeypatch.setenv("OMNIHUB_APPROVAL_THRESHOLD", "0.5")
    assert running_version(cfg) != before
