"""OmniHub: event-sourced orchestration of AI agent runs."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
# A checkout keeps its data beside the code; an installed package (site-packages) keeps
# it in the folder it is run from.
HOME = REPO_ROOT if (REPO_ROOT / "pyproject.toml").exists() else Path.cwd()
