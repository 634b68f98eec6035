"""Emergency kill switches, declared once: which exist, and how they are stored.

A switch stops one feature for every tenant. It is toggled as an event
(``kill_switch_toggled``), folded by the gateway into Postgres and mirrored into Redis,
where the API and the sagas read it: the key ``omnihub:killswitch:<feature>`` holds a
true value (``1``, ``true``, ``on``, ``yes``, any case) while the switch is engaged and
is absent otherwise. The features are:

- ``goals.create``: the API refuses new goals (503 ``feature-disabled``);
- ``runs``: the guardian refuses every new run;
- ``llm_planner``: plans come from the rule-based planner, never a model;
- ``tool:<name>``: steps using that tool fail without running (a domain error).
"""

from __future__ import annotations

KEY_PREFIX = "omnihub:killswitch:"
ENGAGED_VALUES = frozenset({"1", "true", "on", "yes"})

GOALS_CREATE = "goals.create"
RUNS = "runs"
LLM_PLANNER = "llm_planner"
# The built-in step tools (sagas/tools); a unit test keeps this list and the worker's
# registry equal.
TOOL_NAMES = ("transform", "wait", "http_call", "pg_record")


def tool_feature(tool: str) -> str:
    """The feature name of the kill switch for one tool."""
    return f"tool:{tool}"


FEATURES = frozenset({GOALS_CREATE, RUNS, LLM_PLANNER, *(tool_feature(t) for t in TOOL_NAMES)})


class UnknownSwitch(ValueError):
    """A feature no switch exists for: toggling it would engage nothing."""

    def __init__(self, feature: str) -> None:
        super().__init__(f"no kill switch {feature!r}; known: {', '.join(sorted(FEATURES))}")
        self.feature = feature


def known(feature: str) -> str:
    """``feature`` if a switch exists for it; raises :class:`UnknownSwitch` otherwise."""
    if feature not in FEATURES:
        raise UnknownSwitch(feature)
    return feature


def redis_key(feature: str) -> str:
    """The Redis key holding ``feature``'s switch."""
    return KEY_PREFIX + feature


def engaged(value: bytes | str | None) -> bool:
    """Whether a stored switch value means engaged (a missing key does not)."""
    if value is None:
        return False
    text = value.decode() if isinstance(value, bytes) else value
    return text.strip().lower() in ENGAGED_VALUES
