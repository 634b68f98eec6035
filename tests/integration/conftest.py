"""Every test in tests/integration runs against the real test stack (see tests/conftest.py)."""

from __future__ import annotations

import pytest

from infra.stack import StackConfig


@pytest.fixture(autouse=True)
def _uses_stack(stack: StackConfig) -> None:
    """Bring the test stack up (once per session) before any test here."""
