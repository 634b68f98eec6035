"""Emergency kill switches, as the saga reads them.

The gateway owns turning switches on and off (as events, projected into Redis); the
saga only asks. Redis keys, written by the gateway's projection:

- ``omnihub:killswitch:<feature>``: the switch for every tenant;
- ``omnihub:killswitch:<feature>:<tenant_id>``: the switch for one tenant.

A key whose value is ``1``, ``true``, ``on`` or ``yes`` (any case) means engaged; a
missing key or any other value means not engaged. Features the saga checks:

- ``runs``: refuse new runs (checked by the guardian before planning);
- ``llm_planner``: plan with the rule-based planner instead of the model;
- ``tool:<name>``: refuse to run steps of that tool (the step fails, non-retryable).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from redis.asyncio import Redis

KEY_PREFIX = "omnihub:killswitch:"
ENGAGED_VALUES = frozenset({"1", "true", "on", "yes"})
RUNS = "runs"
LLM_PLANNER = "llm_planner"


def tool_feature(tool: str) -> str:
    """The feature name of the kill switch for one tool."""
    return f"tool:{tool}"


def switch_keys(feature: str, tenant_id: str) -> tuple[str, str]:
    """The global and the tenant key of ``feature``."""
    return f"{KEY_PREFIX}{feature}", f"{KEY_PREFIX}{feature}:{tenant_id}"


class KillSwitches(Protocol):
    """Answers whether an emergency kill switch is engaged."""

    async def is_engaged(self, feature: str, tenant_id: str) -> bool:
        """True if ``feature`` is switched off globally or for ``tenant_id``.

        Raises if the switches cannot be read: a run must not proceed unchecked.
        """
        ...


class RedisKillSwitches:
    """:class:`KillSwitches` reading the gateway's Redis keys (see module docstring)."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def is_engaged(self, feature: str, tenant_id: str) -> bool:
        values = await self._redis.mget(list(switch_keys(feature, tenant_id)))
        return any(_engaged(v) for v in values)


class StaticKillSwitches:
    """:class:`KillSwitches` from a fixed set of ``feature`` or ``feature:tenant`` names."""

    def __init__(self, engaged: Iterable[str] = ()) -> None:
        self._engaged = frozenset(engaged)

    async def is_engaged(self, feature: str, tenant_id: str) -> bool:
        return feature in self._engaged or f"{feature}:{tenant_id}" in self._engaged


def _engaged(value: bytes | str | None) -> bool:
    if value is None:
        return False
    text = value.decode() if isinstance(value, bytes) else value
    return text.strip().lower() in ENGAGED_VALUES
