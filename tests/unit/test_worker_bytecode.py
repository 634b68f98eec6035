"""The worker writes its workflow module's bytecode: the sandbox imports that module
again for every workflow run, and without bytecode on disk each import compiles it."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from apps.worker import write_bytecode


def test_the_workflow_modules_bytecode_is_written_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # as PYTHONDONTWRITEBYTECODE=1
    source = tmp_path / "flow_module.py"
    source.write_text("class Flow:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("flow_module")
    cached = Path(importlib.util.cache_from_source(str(source)))
    assert not cached.exists()  # the import itself wrote nothing

    write_bytecode(module.Flow)
    assert cached.exists()
    written = cached.stat().st_mtime_ns

    write_bytecode(module.Flow)  # fresh already: left as it is
    assert cached.stat().st_mtime_ns == written
    monkeypatch.delitem(sys.modules, "flow_module")
