"""The README's demo path: the platform started by the stack, then ``omnihub demo``."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from contracts.deployment import Deployment
from infra import chain_service
from infra.launch import free_port
from infra.platform import SERVICES as PLATFORM
from infra.stack import StackConfig, down, up
from omnihub import REPO_ROOT


def test_demo_runs_its_goal_to_completion_and_shows_the_read_model(
    stack: StackConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    # The platform's processes read these from the environment `up` hands them.
    monkeypatch.setenv("OMNIHUB_TOPIC_PREFIX", f"demo{tag}")
    monkeypatch.setenv("OMNIHUB_PROJECTIONS_SCHEMA", f"demo_{tag}")
    monkeypatch.setenv("OMNIHUB_TEMPORAL_TASK_QUEUE", f"demo-{tag}")
    # The stack's contract (its record is in the stack's state folder, not the platform's),
    # followed from its deployment block by the platform's chain-watcher.
    record = Deployment.read(chain_service.record_path(stack))
    assert record is not None
    monkeypatch.setenv("OMNIHUB_MEMBERSHIP_ADDRESS", record.address)
    monkeypatch.setenv("OMNIHUB_MEMBERSHIP_FROM_BLOCK", str(record.block_number))
    platform = dataclasses.replace(stack, state_dir=tmp_path / "platform", api_port=free_port())
    names = [spec.name for spec in PLATFORM]
    try:
        statuses = up(platform, names)
        assert {s.name for s in statuses if s.state == "running"} == set(names)
        demo = subprocess.run(
            [sys.executable, "-m", "apps.cli", "demo", "--seconds", "120"],
            cwd=REPO_ROOT,
            env={**os.environ, **platform.client_env()},
            capture_output=True,
            text=True,
            timeout=300,
        )
        pending = _pending_approvals(demo.stdout)
    finally:
        down(platform, names)
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    assert "POST /api/v1/goals -> 202" in out
    for event in ("goal_received", "plan_generated", "step_completed", "run_completed"):
        assert event in out, out
    # The run's read model, from the projector: completed, with every event in its timeline.
    assert re.search(r"^  status\s+completed$", out, re.MULTILINE), out
    assert re.search(r"^\s+\d+ run_completed\s+run completed", out, re.MULTILINE), out
    assert re.search(r"^GET /api/v1/live .*goals=\d+", out, re.MULTILINE), out
    assert re.search(r"^OmniDash: http://\S+/dashboard/ \(sign in with the key omh_", out, re.M), (
        out
    )
    # The wallet signed in, was minted pro on chain, and the tenant's tier followed.
    assert "POST /api/v1/auth/wallet/verify (SIWE, signed by the wallet) -> 200" in out, out
    assert re.search(r"^GET /api/v1/tenant -> tier free from default$", out, re.M), out
    assert re.search(
        r"^GET /api/v1/tenant -> tier pro from membership:31337:0x[0-9a-fA-F]{40}:\d+ "
        r"\(\d+\.\d+s later\)$",
        out,
        re.M,
    ), out
    # What the person who opens the dashboard sees: the demo's runs, one waiting.
    assert [a["step_id"] for a in pending] == ["s2"], pending


def _pending_approvals(out: str) -> list[dict[str, Any]]:
    """The approvals the dashboard's key sees pending, once the projector has the one."""
    found = re.search(
        r"^OmniDash: (http://\S+)/dashboard/ \(sign in with the key (\S+)\)", out, re.M
    )
    assert found, out
    base, key = found.groups()
    deadline = time.monotonic() + 60
    while True:
        r = httpx.get(f"{base}/api/v1/approvals", headers={"Authorization": f"Bearer {key}"})
        items: list[dict[str, Any]] = r.json().get("items", []) if r.status_code == 200 else []
        if items or time.monotonic() > deadline:
            return items
        time.sleep(0.5)
