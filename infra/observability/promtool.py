"""Where Prometheus' ``promtool`` is: ``infra/setup.sh`` builds it into ``build/tools``.

It is a Go program (github.com/prometheus/prometheus/cmd/promtool) that no Debian, PyPI
or npm package ships; ``go install`` from the Go module proxy builds it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from omnihub import REPO_ROOT

PROMTOOL_MODULE = "github.com/prometheus/prometheus/cmd/promtool"
PROMTOOL_VERSION = "v0.316.0"  # Prometheus 3.x; keep infra/setup.sh in step
TOOLS_DIR = REPO_ROOT / "build" / "tools"


def promtool_path() -> Path:
    """``$PROMTOOL``, else ``build/tools/promtool``, else one on ``PATH``."""
    for candidate in (os.environ.get("PROMTOOL"), str(TOOLS_DIR / "promtool")):
        if candidate and Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("promtool")
    if found is None:
        raise FileNotFoundError(
            f"promtool not found: run infra/setup.sh (go install {PROMTOOL_MODULE}@"
            f"{PROMTOOL_VERSION} into {TOOLS_DIR})"
        )
    return Path(found)
