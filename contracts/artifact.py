"""The compiled contract: its committed artefact, and the check that it matches the source.

``contracts/artifacts/<Name>.json`` (ABI and bytecode) is committed so Python needs no
compiler at run time. ``contracts/build.cjs`` writes it with solc-js from npm; the check
compiles again into memory and compares, so a source edit without a rebuild fails.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONTRACTS_DIR = Path(__file__).resolve().parent
ARTIFACTS_DIR = CONTRACTS_DIR / "artifacts"
BUILD_SCRIPT = CONTRACTS_DIR / "build.cjs"
MEMBERSHIP = "OmniHubMembership"


class BuildError(RuntimeError):
    """The compiler could not run, or failed on the sources."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: what web3 needs to deploy and call it."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # creation code, 0x-prefixed hex
    deployed_bytecode: str  # runtime code, what eth_getCode answers once deployed
    compiler: str


def load(name: str = MEMBERSHIP, folder: Path = ARTIFACTS_DIR) -> Artifact:
    """The committed artefact of contract ``name``."""
    return _from_json(json.loads((folder / f"{name}.json").read_text()))


def compile_sources(timeout_s: float = 120.0) -> dict[str, Artifact]:
    """Compile ``contracts/src`` now (node + solc-js) and return every contract, unwritten."""
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not installed: run infra/setup.sh")
    if not (CONTRACTS_DIR / "node_modules" / "solc").is_dir():
        raise BuildError("solc is not installed in contracts/node_modules: run infra/setup.sh")
    try:
        done = subprocess.run(
            [node, str(BUILD_SCRIPT), "--stdout"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"solc-js took more than {timeout_s:g}s") from exc
    if done.returncode != 0:
        raise BuildError(f"solc-js failed:\n{done.stderr.strip()}")
    return {name: _from_json(raw) for name, raw in json.loads(done.stdout).items()}


def differences(folder: Path = ARTIFACTS_DIR) -> list[str]:
    """How the committed artefacts differ from a fresh compile; empty when they agree."""
    fresh = compile_sources()
    committed = {path.stem for path in folder.glob("*.json")}
    problems = [f"{name}: compiled but not committed" for name in sorted(set(fresh) - committed)]
    problems += [f"{name}: committed but no longer compiled" for name in committed - set(fresh)]
    for name in sorted(set(fresh) & committed):
        problems += _compare(load(name, folder), fresh[name])
    return problems


def _compare(committed: Artifact, fresh: Artifact) -> list[str]:
    problems = []
    for field in ("abi", "bytecode", "deployed_bytecode", "compiler"):
        if getattr(committed, field) != getattr(fresh, field):
            problems.append(f"{committed.name}: {field} differs from a fresh compile")
    return problems


def _from_json(raw: dict[str, Any]) -> Artifact:
    return Artifact(
        name=str(raw["contractName"]),
        abi=list(raw["abi"]),
        bytecode=str(raw["bytecode"]),
        deployed_bytecode=str(raw["deployedBytecode"]),
        compiler=str(raw["compiler"]),
    )
