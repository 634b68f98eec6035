"""Typed slots of a goal: the values a plan takes, masked by their type. Pure.

``extract("Restart the checkout service in staging")`` gives the template
``Restart the {SERVICE} service in {ENV}`` with ``{"SERVICE": "checkout", "ENV":
"staging"}``. The types are shapes (an e-mail, a path, a version, an Ethereum address,
an amount with its currency...), a few small vocabularies (environments, relative
periods) and named entities (capitalised names, codes, ``<noun> <identifier>``). A type
is named after what it is, so ``Transfer $250`` (``MONEY_USD``) and ``Transfer 250
EUR`` (``MONEY_EUR``) never share a template. Slots of one type are numbered by position
(``DATE``, ``DATE_2``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:mon|tues|wednes|thurs|fri|satur|sun)day"
_UNIT = r"(?:day|week|month|quarter|year|hour|minute)"
_ENVS = r"production|prod|staging|stage|dev|development|qa|sandbox|uat|preprod"
# Nouns whose next lowercase word names one of them ("tenant acme", "table sales").
_NAMED = (
    r"tenant|team|table|database|db|repo|repository|branch|project|bucket|queue|topic"
    r"|cluster|namespace|workspace|org|organization|department|segment|region|zone|schema"
    r"|job|flag|node|host|server|vm|package|library|group"
)
_PROPER = r"[A-Z][a-z]+(?:[ -][A-Z][a-z]+)*"
_CURRENCY_WORDS = {"dollar": "USD", "euro": "EUR", "pound": "GBP", "yen": "JPY"}
_SYMBOLS = {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY"}
# Words after a number that make it a count of something, not an identifier.
_NOT_AFTER_ID = (
    r"(?!\s+(?!(?:for|to|from|in|on|at|by|with|and|or|about|as|of|into|the|an|is|was|now|if"
    r"|when|but|so|then|via|using|until|since|before|after|that|which|over|under|without"
    r"|except|onto|please)\b)[a-z]{2,})"
)
_CODES = (
    "USD|EUR|GBP|JPY|CHF|CAD|AUD|NZD|CNY|HKD|SGD|SEK|NOK|DKK|PLN|CZK|HUF|INR|BRL|MXN|ZAR|TRY"
    "|KRW|AED|SAR|ILS|THB|IDR|MYR|PHP|TWD|BTC|ETH|USDC|USDT|DAI|WBTC|WETH|SOL|MATIC|XRP|ADA"
    "|DOT|LTC|BNB|AVAX|LINK|ARB"
)

_RULES: tuple[tuple[str, str, int], ...] = (
    (
        "QUOTED",
        "(?:(?<=\\s)|^)[\"\u201c'\u2018](?P<v>[^\"\u201d'\u2019]+)[\"\u201d'\u2019](?=[\\s,.;:!?]|$)",
        0,
    ),
    ("URL", r"(?P<v>\b[a-z][a-z0-9+.-]*://[^\s<>\"]+[^\s<>\".,;:!?)])", 0),
    ("EMAIL", r"(?P<v>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)", 0),
    ("TX_HASH", r"(?P<v>\b0x[0-9a-fA-F]{64}\b)", 0),
    ("ETH_ADDRESS", r"(?P<v>\b0x[0-9a-fA-F]{40}\b)", 0),
    ("CHANNEL", r"(?<![\w#])(?P<v>#[a-z][\w-]*)", 0),
    ("PAIR", r"(?P<v>\b[A-Z]{3,5}/[A-Z]{3,5}\b)", 0),
    ("PATH", r"(?<![\w/.:])(?P<v>(?:~|\.{1,2})?/[\w.-]+(?:/[\w.-]+)*/?)", 0),
    ("REF", r"(?<![\w/.:@-])(?P<v>[a-z][\w.-]*/[\w.-]+(?:/[\w.-]+)*)", 0),
    ("HOST", r"(?P<v>\b\d{1,3}(?:\.\d{1,3}){3}\b)", 0),
    ("VERSION", r"(?P<v>\bv?\d+\.\d+\.\d+(?:-[\w.]+)?\b|(?<![\w-])v\d+(?:\.\d+)?\b)", 0),
    ("HOST", r"(?P<v>\b[a-z][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:[a-z]{2,})\b)(?!\.\w)", 0),
    ("MONEY", r"(?P<v>[$€£¥]\s?\d[\d,]*(?:\.\d+)?)", 0),
    ("MONEY", rf"(?P<v>\d[\d,.]*\s?(?P<c>{_CODES})\b)(?!/)", 0),
    ("MONEY", r"(?P<v>\d[\d,]*(?:\.\d+)?\s?(?P<w>dollar|euro|pound|yen)s?\b)", re.I),
    ("TEMPERATURE", r"(?P<v>-?\d+(?:\.\d+)?\s?°\s?(?P<t>[CF]))", 0),
    ("PERCENT", r"(?P<v>\b\d+(?:\.\d+)?\s?%)", 0),
    ("SIZE", r"(?P<v>\b\d+(?:\.\d+)?\s?(?:[KMGTP]i?B|bytes?)\b)", 0),
    ("DIMENSIONS", r"(?P<v>\b\d+x\d+\b)", 0),
    ("QUARTER", r"(?P<v>\bQ[1-4](?:\s\d{4}|\s?FY\d{2,4})?\b)", 0),
    (
        "PERIOD",
        rf"(?P<v>\b(?:last|this|next|past|previous|current)\s(?:\d+\s)?(?P<u>{_UNIT})s?\b"
        rf"|\b(?P<u2>year|month|quarter|week)[ -]to[ -]date\b)",
        re.I,
    ),
    (
        "DATE",
        rf"(?P<v>\b\d{{4}}-\d{{2}}-\d{{2}}\b|\b\d{{1,2}}/\d{{1,2}}/\d{{2,4}}\b"
        rf"|\b{_MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?(?:,? \d{{4}})?\b"
        rf"|\b\d{{1,2}}(?:st|nd|rd|th)? (?:of )?{_MONTH}\b(?:,? \d{{4}})?)",
        re.I,
    ),
    ("MONTH", rf"(?P<v>\b{_MONTH} \d{{4}}\b)", re.I),
    (
        "DAY",
        rf"(?P<v>\b(?:(?:next|this|last|coming) )?{_WEEKDAY}\b"
        rf"|\b(?:today|tomorrow|tonight|yesterday)(?: (?:morning|afternoon|evening|night))?\b)",
        re.I,
    ),
    ("TIME", r"(?P<v>\b\d{1,2}:\d{2}(?:\s?[ap]\.?m\.?)?|\b\d{1,2}\s?[ap]\.?m\.?)(?!\w)", re.I),
    ("YEAR", r"(?<![\w.-])(?P<v>(?:19|20)\d{2})(?![\w.-])", 0),
    ("PHONE", r"(?P<v>\+\d[\d\s-]{6,}\d)", 0),
    ("ENV", rf"(?P<v>\b(?:{_ENVS})\b)", 0),
    ("SERVICE", r"(?P<v>\b[a-z][\w-]*)(?=\sservice\b)", 0),
    ("HASH", r"(?P<v>\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b)", 0),
    ("NAMED", rf"\b(?P<k>{_NAMED})\s+(?P<v>[a-z][\w-]*)\b", re.I),
    (
        "ID",
        r"\b(?P<k>[A-Za-z]+)\s+(?:id\s+|number\s+|no\.?\s+|ending\s+)?#?"
        rf"(?P<v>(?=[\w-]*\d)[A-Za-z0-9][\w-]*\b){_NOT_AFTER_ID}",
        0,
    ),
    (
        "ID",
        rf"\b(?P<k>[A-Za-z]+)\s+(?:id\s+|number\s+|no\.?\s+|#)?(?P<v>[A-Z][A-Z0-9]*[A-Z]\b){_NOT_AFTER_ID}",
        0,
    ),
    ("CODE", r"(?P<v>\b(?=[A-Za-z0-9-]*\d)(?=[a-z0-9-]*[A-Z])[A-Za-z0-9]+(?:-[A-Za-z0-9]+)+\b)", 0),
    ("IDENT", r"(?P<v>\b[a-z][a-z0-9]*(?:[-_][a-z0-9]+)+\b)", 0),
    ("CODE", r"(?P<v>\b[A-Z][A-Z0-9]{1,9}\b)", 0),
    ("NUMBER", r"(?<![\w.,])(?P<v>\d[\d,]*(?:\.\d+)?)(?![\w]|[.,]\d)", 0),
    ("PLACE", rf"\b(?P<k>to|from|in|at|near|via|for|with|nach)\s+(?P<v>{_PROPER})\b", 0),
    ("NAME", rf"(?<=[a-z,] )(?P<v>{_PROPER})\b", 0),
)
_PATTERNS = tuple((kind, re.compile(rx, flags)) for kind, rx, flags in _RULES)
_PLACE_TYPES = {"to": "DESTINATION", "nach": "DESTINATION", "from": "ORIGIN"}
# Slots whose value means another thing on another day: a plan that does not take
# them as they are (it resolved "tomorrow" to a date) is never reused.
RELATIVE = frozenset({"DAY", "PERIOD"})
_NOT_IDENTIFIER_NOUNS = frozenset(
    [
        "a",
        "an",
        "the",
        "to",
        "for",
        "of",
        "in",
        "on",
        "at",
        "and",
        "or",
        "by",
        "with",
        "from",
        "is",
        "be",
        "are",
        "was",
        "it",
        "its",
        "all",
        "my",
        "our",
        "your",
        "last",
        "this",
        "next",
        "top",
        "first",
        "buy",
        "sell",
        "add",
        "send",
        "get",
        "show",
        "set",
        "than",
        "every",
        "per",
        "each",
    ]
)


@dataclass(frozen=True)
class GoalTemplate:
    """A goal with its slot values masked by their types."""

    text: str
    slots: Mapping[str, str]

    @property
    def slot_names(self) -> tuple[str, ...]:
        return tuple(sorted(self.slots))


def extract(goal: str) -> GoalTemplate:
    """The template and slot values of ``goal`` (whitespace normalised)."""
    text = " ".join(goal.split()).rstrip(".!?")
    spans: list[tuple[int, int, str]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span("v")
            typed = _slot_type(kind, match)
            if typed and not any(s < end and start < e for s, e, _ in spans):
                spans.append((start, end, typed))
                if "k" in match.groupdict():  # the noun naming a value is not a value
                    spans.append((*match.span("k"), ""))
    out, slots, last, seen = [], {}, 0, dict[str, int]()
    for start, end, kind in sorted(s for s in spans if s[2]):
        seen[kind] = seen.get(kind, 0) + 1
        name = kind if seen[kind] == 1 else f"{kind}_{seen[kind]}"
        slots[name] = text[start:end]
        out.append(text[last:start] + "{" + name + "}")
        last = end
    return GoalTemplate("".join(out) + text[last:], slots)


def kind_of(name: str) -> str:
    """The type of a slot name (``DATE_2`` -> ``DATE``)."""
    return re.sub(r"_\d+$", "", name)


def is_relative(name: str) -> bool:
    """Whether a slot's value is relative to the day it is read (``tomorrow``)."""
    kind = kind_of(name)
    return kind in RELATIVE or kind.startswith("PERIOD_")


def _slot_type(kind: str, match: re.Match[str]) -> str | None:
    groups = match.groupdict()
    if kind == "ID":
        noun = groups["k"].lower()
        return None if noun in _NOT_IDENTIFIER_NOUNS else noun.upper() + "_ID"
    if kind == "NAMED":
        return groups["k"].upper() + "_NAME"
    if kind == "MONEY":
        return "MONEY_" + _currency(groups)
    if kind == "TEMPERATURE":
        return "TEMPERATURE_" + groups["t"]
    if kind == "PERIOD":
        return "PERIOD_" + (groups.get("u") or groups.get("u2") or "").upper()
    if kind == "PLACE":
        word = groups["k"]
        if word in ("for", "with"):
            return "NAME"
        return _PLACE_TYPES.get(word, "LOCATION")
    return kind


def _currency(groups: Mapping[str, str | None]) -> str:
    if groups.get("c"):
        return str(groups["c"])
    if groups.get("w"):
        return _CURRENCY_WORDS[str(groups["w"]).lower()]
    return _SYMBOLS[str(groups["v"])[0]]
