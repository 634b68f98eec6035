"""The committed ABI and bytecode are what the Solidity sources compile to (solc-js)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from contracts import artifact


def test_committed_artifacts_match_a_fresh_compile() -> None:
    assert artifact.differences() == []


def test_a_stale_artifact_is_reported(tmp_path: Path) -> None:
    for path in artifact.ARTIFACTS_DIR.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    stale = tmp_path / f"{artifact.MEMBERSHIP}.json"
    raw = json.loads(stale.read_text())
    raw["deployedBytecode"] = raw["deployedBytecode"][:-2] + "00"
    raw["abi"] = raw["abi"][1:]
    stale.write_text(json.dumps(raw))
    assert artifact.differences(tmp_path) == [
        f"{artifact.MEMBERSHIP}: abi differs from a fresh compile",
        f"{artifact.MEMBERSHIP}: deployed_bytecode differs from a fresh compile",
    ]
