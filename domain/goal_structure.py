"""Whether two goal templates ask for the same action on the same object. Pure.

Similar wording is not the same request: ``Create ticket {ID}`` and ``Close ticket
{ID}`` embed close together, and so do ``Buy``/``Sell``, ``Enable``/``Disable``, a goal
and its negation. Two templates agree when their canonical word sequences are equal:
lower-cased, polite framing dropped (``please``, ``could you``, ``I'd like to``),
articles and possessives dropped, verbs mapped to one word per meaning (``purchase`` is
``buy``, ``turn on`` is ``enable``, ``show``/``get``/``list`` are one read), words
stemmed. Prepositions stay, so ``from {ACCOUNT_ID} to {ACCOUNT_ID_2}`` keeps its
direction; negations (``not``, ``without``, ``except``) stay, so they must agree too.
Anything else that differs is a miss: a miss costs a model call, a wrong plan costs a
wrong action.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_CONTRACTIONS = (
    (r"\b(\w+)n't\b", r"\1 not"),
    (r"\bcan not\b", "can not"),
    (r"\bwon not\b", "will not"),
    (r"\b(what|where|who|how|that|it|there)'s\b", r"\1 is"),
    (r"\bi'd\b", "i would"),
    (r"\bi'm\b", "i am"),
    (r"\blet's\b", "let us"),
    (r"'s\b", ""),
)
# Polite or first-person framing before the action, dropped from the start.
_LEAD = re.compile(
    r"^(?:(?:please|kindly|just|ok|hey)\s+|(?:could|can|would|will)\s+you\s+(?:please\s+)?"
    r"|i\s+(?:would\s+like|want|need|wish|have)\s+to\s+|(?:help\s+me|go\s+ahead\s+and)\s+)+"
)
_TRAIL = re.compile(r"(?:\s+(?:please|for\s+me|thanks|thank\s+you))+$")
# Phrasal verbs, read before single words.
_PHRASES = (
    (r"\b(?:turn|switch)\s+on\b", "enable"),
    (r"\b(?:turn|switch)\s+off\b", "disable"),
    (r"\bset\s+up\b", "schedule"),
    (r"\b(?:shut|power)\s+down\b|\bpower\s+off\b", "stop"),
    (r"\b(?:spin|boot|power)\s+up\b|\bpower\s+on\b", "start"),
    (r"\blook\s+up\b", "show"),
    (r"\bwhat\s+(?:is|are)\b|\btell\s+me\b", "show"),
    (r"\bcheck\s+in\b", "checkin"),
    (r"\bcheck\s+out\b", "checkout"),
    (r"\broll\s+back\b", "rollback"),
    (r"\broll\s+out\b", "rollout"),
    (r"\bcall\s+off\b", "cancel"),
    (r"\bsum\s+up\b", "summarize"),
)
# One word per meaning. Opposites stay apart: this table only merges synonyms.
_SYNONYMS = {
    "purchase": "buy",
    "email": "send",
    "mail": "send",
    "display": "show",
    "view": "show",
    "get": "show",
    "fetch": "show",
    "list": "show",
    "find": "show",
    "search": "show",
    "check": "show",
    "book": "schedule",
    "reserve": "schedule",
    "arrange": "schedule",
    "organize": "schedule",
    "make": "create",
    "generate": "create",
    "remove": "delete",
    "erase": "delete",
    "drop": "delete",
    "destroy": "delete",
    "accept": "approve",
    "decline": "reject",
    "deny": "reject",
    "refuse": "reject",
    "give": "grant",
    "launch": "start",
    "run": "start",
    "halt": "stop",
    "reboot": "restart",
    "abort": "cancel",
    "activate": "enable",
    "deactivate": "disable",
    "modify": "update",
    "change": "update",
    "edit": "update",
    "summarise": "summarize",
    "put": "add",
    "insert": "add",
}
_DROPPED = frozenset(
    [
        "a",
        "an",
        "the",
        "my",
        "our",
        "your",
        "their",
        "his",
        "her",
        "its",
        "this",
        "that",
        "these",
        "those",
        "some",
        "do",
        "does",
        "did",
        "is",
        "are",
        "be",
        "been",
        "am",
        "me",
        "i",
        "we",
        "you",
        "us",
        "just",
        "kindly",
        "please",
        "also",
    ]
)
NEGATIONS = frozenset({"not", "no", "never", "without", "except", "exclud", "excluding", "skip"})
_TOKEN = re.compile(r"\{[A-Z][A-Z0-9_]*\}|[^\W_]+")


@dataclass(frozen=True)
class Structure:
    """A template's canonical words: its action first, then the rest in order."""

    words: tuple[str, ...]

    @property
    def action(self) -> str:
        return next((w for w in self.words if not w.startswith("{")), "")

    @property
    def negations(self) -> frozenset[str]:
        return frozenset(w for w in self.words if w in NEGATIONS)


def structure(template: str) -> Structure:
    """The canonical word sequence of a template (placeholders kept as they are)."""
    text = template.lower()
    text = re.sub(r"\{([a-z][a-z0-9_]*)\}", lambda m: "{" + m.group(1).upper() + "}", text)
    for pattern, repl in _CONTRACTIONS:
        text = re.sub(pattern, repl, text)
    text = " ".join(_TOKEN.findall(text))
    text = _TRAIL.sub("", _LEAD.sub("", text))
    for pattern, repl in _PHRASES:
        text = re.sub(pattern, repl, text)
    # "on Monday" is "Monday": a day or date needs no preposition to be one.
    text = re.sub(r"\bon (?=\{(?:DAY|DATE)(?:_\d+)?\})", "", text)
    words = (_canonical(w) for w in text.split() if w not in _DROPPED)
    return Structure(tuple(words))


def disagreement(stored_template: str, template: str) -> str | None:
    """Why two templates are not the same request, or None when they agree.

    ``"action"`` (another verb: create/close, buy/sell, enable/disable...),
    ``"negation"`` (one negates what the other does not) or ``"words"`` (another
    object, modifier or word order).
    """
    a, b = structure(stored_template), structure(template)
    if a.words == b.words:
        return None
    if a.action != b.action:
        return "action"
    if a.negations != b.negations:
        return "negation"
    return "words"


def _canonical(word: str) -> str:
    if word.startswith("{"):
        return word
    stem = _stem(word)
    return _SYNONYMS.get(word) or _SYNONYMS.get(stem) or stem


def _stem(word: str) -> str:
    if len(word) <= 4 or word.isdigit():
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("ing") and len(word) >= 6:
        return word[:-3]
    if word.endswith("ed") and len(word) >= 5:
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word
