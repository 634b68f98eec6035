"""OmniHub: event-sourced orchestration of AI agent runs."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
