"""Shared fixtures. Unit tests start nothing; integration and e2e tests get the test stack.

The test stack is the local stack with every port moved by 10000 (Kafka on 19092,
Postgres on 15432, ...) and its data in ``.omnihub/test``, so it never clashes with a dev
stack. It is left running after the session, and the next session reuses it; set
``OMNIHUB_TEST_STACK_DOWN=1`` to stop it at the end. ``OMNIHUB_TEST_STACK_PORT_OFFSET``
moves it elsewhere (data then in ``.omnihub/test-<offset>``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.backing import SERVICES as BACKING
from infra.stack import StackConfig, down, up
from omnihub import REPO_ROOT
from omnihub.settings import get_settings

TEST_PORT_OFFSET = 10000


def stack_config_for_tests() -> StackConfig:
    """The test stack's config (ports offset by 10000, data in ``.omnihub/test``)."""
    offset = int(os.environ.get("OMNIHUB_TEST_STACK_PORT_OFFSET") or TEST_PORT_OFFSET)
    name = "test" if offset == TEST_PORT_OFFSET else f"test-{offset}"
    return StackConfig().with_offset(offset, Path(REPO_ROOT / ".omnihub" / name))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests by folder, so ``-m "not integration and not e2e"`` runs only units."""
    for item in items:
        parts = Path(str(item.path)).parts
        for folder in ("integration", "e2e"):
            if folder in parts:
                item.add_marker(getattr(pytest.mark, folder))


@pytest.fixture(scope="session")
def stack() -> Iterator[StackConfig]:
    """The running test stack, with ``OMNIHUB_*`` pointing at it for the whole session."""
    cfg = stack_config_for_tests()
    # The servers only: tests start OmniHub's own processes themselves, each with its own
    # topic prefix, schema and task queue, so they never share state with each other.
    up(cfg, [spec.name for spec in BACKING])  # raises StackError with the log tail
    with pytest.MonkeyPatch.context() as patch:
        for key, value in cfg.client_env().items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        yield cfg
    get_settings.cache_clear()
    if os.environ.get("OMNIHUB_TEST_STACK_DOWN") == "1":
        down(cfg)
