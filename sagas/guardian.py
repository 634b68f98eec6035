"""The guardian: sanitise a goal and score its risk before anything is planned.

Pure: the kill switches are looked up by the activity and handed in. The score is
``1 - prod(1 - w)`` over the weights of the signals found, so it stays in [0, 1] and
grows with every independent signal. The signals are the guardian's own (prompt
injection, destructive commands) plus the tenant's risk policy
(:mod:`domain.risk_policy`), the same one planning uses for each step.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

from domain.risk_policy import RiskPolicy, find

# Zero-width characters and bidi overrides hide text from human reviewers.
_INVISIBLE = dict.fromkeys(
    map(
        ord, "\u200b\u200c\u200d\u2060\ufeff\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
    ),
    None,
)
_SPACES = str.maketrans("\n\r\t", "   ")
_WHITESPACE = re.compile(r" +")


@dataclass(frozen=True)
class Signal:
    """A pattern that raises the risk of a goal, with the reason it gives."""

    pattern: str
    weight: float
    reason: str


# Only what is about the goal itself; the kinds of action are the risk policy's rules.
DEFAULT_SIGNALS: tuple[Signal, ...] = (
    Signal(
        r"\bignore (all |any )?(previous|prior|above) (instructions|rules)\b",
        0.9,
        "prompt injection: asks to ignore instructions",
    ),
    Signal(r"\b(system prompt|jailbreak|developer mode)\b", 0.6, "prompt injection vocabulary"),
    Signal(r"\brm -rf\b|\bdrop (table|database)\b", 0.8, "destructive command"),
)


@dataclass(frozen=True)
class GuardianPolicy:
    """What the guardian checks; ``refuse_at`` is the score from which a run is refused."""

    max_goal_chars: int = 2000
    refuse_at: float = 0.95
    signals: tuple[Signal, ...] = DEFAULT_SIGNALS
    risk: RiskPolicy = field(default_factory=RiskPolicy)


@dataclass(frozen=True)
class Assessment:
    """The guardian's verdict: what the planner sees, how risky, why, and if allowed."""

    sanitized_goal: str
    risk_score: float
    reasons: tuple[str, ...]
    allowed: bool
    notes: tuple[str, ...] = field(default=())


def sanitize_goal(raw: str, max_chars: int) -> tuple[str, tuple[str, ...]]:
    """The goal made safe to show and to prompt with, and what was changed.

    Invalid code points (lone surrogates) are replaced, text is NFKC-normalised,
    invisible and control characters dropped (newlines and tabs become spaces),
    whitespace collapsed and the result cut to ``max_chars``.
    """
    notes: list[str] = []
    text = raw.encode("utf-8", "replace").decode("utf-8")
    if text != raw:
        notes.append("replaced invalid code points")
    normal = unicodedata.normalize("NFKC", text)
    if normal != text:
        notes.append("normalised unicode (NFKC)")
    visible = normal.translate(_INVISIBLE).translate(_SPACES)
    cleaned = "".join(ch for ch in visible if unicodedata.category(ch)[0] != "C")
    if cleaned != visible or len(visible) != len(normal):
        notes.append("removed control or invisible characters")
    collapsed = _WHITESPACE.sub(" ", cleaned).strip()
    if len(collapsed) > max_chars:
        notes.append(f"truncated from {len(collapsed)} to {max_chars} characters")
        collapsed = collapsed[:max_chars].rstrip()
    return collapsed, tuple(notes)


def assess(goal: str, policy: GuardianPolicy, engaged_switches: Sequence[str] = ()) -> Assessment:
    """Sanitise ``goal`` and score it; ``engaged_switches`` names kill switches that are on."""
    clean, notes = sanitize_goal(goal, policy.max_goal_chars)
    reasons: list[str] = []
    keep = 1.0
    lowered = clean.lower()
    for signal in policy.signals:
        if re.search(signal.pattern, lowered):
            reasons.append(signal.reason)
            keep *= 1.0 - signal.weight
    found = find(clean, policy.risk)
    reasons.extend(found.reasons)
    keep *= 1.0 - found.score
    score = round(1.0 - keep, 4)
    allowed = True
    if not clean:
        reasons.append("empty goal after sanitising")
        allowed = False
    if score >= policy.refuse_at:
        reasons.append(f"risk {score} is at or above the refusal level {policy.refuse_at}")
        allowed = False
    for switch in engaged_switches:
        reasons.append(f"kill switch engaged: {switch}")
        allowed = False
    return Assessment(clean, score, tuple(reasons), allowed, notes)
