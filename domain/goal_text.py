"""What counts as a goal at all (pure): the API refuses the rest with a 422."""

from __future__ import annotations

import unicodedata


def is_blank(text: str) -> bool:
    """Whether ``text`` says nothing: only whitespace, control or invisible characters
    (what the guardian's sanitising would remove to leave an empty goal)."""
    return all(ch.isspace() or unicodedata.category(ch)[0] == "C" for ch in text)


def require_words(text: str) -> str:
    """``text`` itself; a ``ValueError`` when it is blank (a pydantic validator)."""
    if is_blank(text):
        raise ValueError("the goal is blank: it has no visible characters")
    return text
