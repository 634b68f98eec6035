"""The goal families of the simulated stream (:mod:`projections.plan_cache.stream`).

A head of common requests written by hand, with paraphrases, a few whose plans spell a
value another way (written back: only the same value hits) and one about a relative
period the model resolves to dates (never reused); then a long tail made of verb x
qualifier x object x slot. Each slot draws from a pool of values by rank.
"""

from __future__ import annotations

import json
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from domain.events import PlanStep


def _words(text: str) -> list[str]:
    return text.split()


Pool = Callable[[int], str]  # rank (0 = most common) -> value


def pools() -> dict[str, tuple[int, Pool]]:
    cities = _words("Paris London Rome Lisbon Berlin Madrid Oslo Vienna Prague Dublin Athens Tokyo")
    cities += _words("Boston Denver Chicago Seattle Toronto Sydney Zurich Warsaw Milan Porto")
    first = _words("Alice Bob Carol Dan Eve Frank Grace Hana Ivan Julia Ken Lena Marco Nina")
    last = _words("Smith Jones Rossi Novak Silva Chen Okafor Becker Hoffmann Martins Nair")
    words = _words("alpha beta gamma delta omega nova orion atlas zephyr lumen pixel")
    return {
        "city": (len(cities), lambda r: cities[r]),
        "person": (len(first) * len(last), lambda r: f"{first[r % 14]} {last[r // 14]}"),
        "email": (5000, lambda r: f"user{r}@example.com"),
        "order": (90000, lambda r: str(10000 + r * 7919 % 90000)),
        "customer": (50000, lambda r: f"C-{10000 + r * 104729 % 90000}"),
        "amount": (2000, lambda r: f"${(r * 37 % 2000) + 5}"),
        "eur": (2000, lambda r: f"{(r * 53 % 5000) + 10} EUR"),
        "date": (365, lambda r: f"2027-{1 + r // 28 % 12:02d}-{1 + r % 28:02d}"),
        "time": (48, lambda r: f"{8 + r // 4 % 12}:{r % 4 * 15:02d}"),
        "channel": (300, lambda r: f"#team-{words[r % 11]}-{r // 11}"),
        "path": (5000, lambda r: f"/data/{words[r % 11]}/file-{r}.csv"),
        "version": (400, lambda r: f"{1 + r // 100}.{r // 10 % 10}.{r % 10}"),
        "repo": (200, lambda r: f"acme/{words[r % 11]}-{r // 11}"),
        "service": (60, lambda r: f"{words[r % 11]}-svc{r // 11}"),
        "env": (4, lambda r: ("production", "staging", "dev", "qa")[r]),
        "pair": (
            8,
            lambda r: _words("EUR/USD USD/JPY GBP/USD USD/CHF AUD/USD EUR/GBP USD/CAD NZD/USD")[r],
        ),
        "ticker": (
            40,
            lambda r: (
                _words("AAPL MSFT NVDA TSLA AMZN GOOG META IBM ORCL KO")[r % 10] + "X" * (r // 10)
            ),
        ),
        "shares": (200, lambda r: str(r + 1)),
        "eth": (3000, lambda r: "0x" + f"{r * 2654435761 % (1 << 160):040x}"),
        "ether": (500, lambda r: f"{(r % 50 + 1) / 10:g} ETH"),
        "ticket": (20000, lambda r: str(1000 + r)),
        "host": (300, lambda r: f"node-{r}.prod.acme.io"),
        "flag": (100, lambda r: f"{words[r % 11]}-feature-{r // 11}"),
        "period": (2, lambda r: ("last month", "this month")[r]),
    }


@dataclass(frozen=True)
class Family:
    """One kind of request: its phrasings, its slots' pools, and the model's plan."""

    phrasings: tuple[str, ...]
    plan: tuple[tuple[str, dict[str, Any]], ...]

    def goal(self, values: dict[str, str], phrasing: int) -> str:
        return self.phrasings[phrasing].format(**values)

    def steps(self, values: dict[str, str]) -> tuple[PlanStep, ...]:
        return tuple(
            PlanStep(f"s{i + 1}", tool, json.dumps(_fill(args, values), sort_keys=True))
            for i, (tool, args) in enumerate(self.plan)
        )

    @property
    def slots(self) -> tuple[str, ...]:
        return tuple(sorted({k for p in self.phrasings for k in _keys(p)}))


def _keys(phrasing: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(phrasing) if f]


def _fill(node: Any, values: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: _fill(v, values) for k, v in node.items()}
    if isinstance(node, str) and node.startswith("#num:"):
        text = values[node[5:]].replace("$", "").replace(" EUR", "").replace(" ETH", "")
        number = float(text)
        return int(number) if number.is_integer() else number
    if isinstance(node, str):
        return node.format(**values)
    return node


def _f(phrasings: str, *plan: tuple[str, dict[str, Any]]) -> Family:
    return Family(tuple(p.strip() for p in phrasings.split("|")), plan)


HEAD: tuple[Family, ...] = (
    _f(
        "Refund order {order}|Please refund order {order}",
        ("payments.refund", {"order_id": "#num:order"}),
    ),
    _f("Track order {order}|Where is my order {order}?", ("orders.track", {"order_id": "{order}"})),
    _f(
        "Book flight to {city}|Please book me a flight to {city}",
        ("flights.book", {"to": "{city}"}),
    ),
    _f(
        "Send the weekly sales report to {email}",
        ("reports.weekly_sales", {}),
        ("email.send", {"to": "{email}"}),
    ),
    _f(
        "Restart the {service} service in {env}",
        ("k8s.restart", {"service": "{service}", "env": "{env}"}),
    ),
    _f(
        "Close ticket {ticket}|Could you close ticket {ticket}?",
        ("tickets.close", {"id": "#num:ticket"}),
    ),
    _f("Create a ticket for customer {customer}", ("tickets.create", {"customer": "{customer}"})),
    _f("Show the order history of customer {customer}", ("crm.orders", {"customer": "{customer}"})),
    _f(
        "Post the release notes to {channel}",
        ("docs.notes", {}),
        ("slack.post", {"channel": "{channel}"}),
    ),
    _f(
        "Schedule a meeting with {person} on {date} at {time}",
        ("calendar.create", {"with": "{person}", "date": "{date}", "time": "{time}"}),
    ),
    _f(
        "Transfer {amount} to customer {customer}",
        ("payments.transfer", {"amount": "#num:amount", "to": "{customer}"}),
    ),
    _f(
        "Get the {pair} exchange rate|What is the {pair} exchange rate?",
        ("fx.rate", {"pair": "{pair}"}),
    ),
    _f(
        "Buy {shares} shares of {ticker}",
        ("broker.buy", {"symbol": "{ticker}", "qty": "#num:shares"}),
    ),
    _f(
        "Sell {shares} shares of {ticker}",
        ("broker.sell", {"symbol": "{ticker}", "qty": "#num:shares"}),
    ),
    _f(
        "Deploy {repo} version {version} to {env}",
        ("ci.deploy", {"repo": "{repo}", "version": "{version}", "env": "{env}"}),
    ),
    _f("Send {ether} to {eth}", ("eth.transfer", {"to": "{eth}", "value": "#num:ether"})),
    _f("Back up {path} to the archive", ("storage.backup", {"path": "{path}"})),
    _f(
        "Enable the feature flag {flag} in {env}",
        ("flags.set", {"flag": "{flag}", "env": "{env}", "on": True}),
    ),
    _f(
        "Disable the feature flag {flag} in {env}",
        ("flags.set", {"flag": "{flag}", "env": "{env}", "on": False}),
    ),
    _f("Check disk usage on {host}", ("ssh.exec", {"host": "{host}", "cmd": "df -h"})),
    _f("Convert {eur} to USD", ("fx.convert", {"amount": "#num:eur", "from": "EUR", "to": "USD"})),
    _f(
        "Grant {email} access to the billing dashboard",
        ("iam.grant", {"user": "{email}", "resource": "billing"}),
    ),
    _f(
        "Revoke {email} access to the billing dashboard",
        ("iam.revoke", {"user": "{email}", "resource": "billing"}),
    ),
    # The model spells the city as an airport code: written back, only the same city hits.
    _f("Find hotels near the airport in {city}", ("hotels.search", {"airport": "APT"})),
    # A relative period the model resolves to dates: never reused.
    _f(
        "Show revenue for {period}",
        ("analytics.revenue", {"from": "2026-11-01", "to": "2026-11-30"}),
    ),
)

_VERBS = _words("archive export summarize review approve reject flag forward translate audit")
_OBJECTS = _words("invoice contract report proposal receipt memo briefing quote order ticket")
_QUALIFIERS = _words("urgent pending draft signed overdue quarterly internal scanned")
_TAILS = (("for customer {customer}", "customer"), ("to {email}", "email"), ("at {path}", "path"))


def tail_family(rank: int) -> Family:
    """The ``rank``-th family of the long tail (verb x qualifier x object x slot)."""
    verb = _VERBS[rank % len(_VERBS)]
    rest = rank // len(_VERBS)
    obj = _OBJECTS[rest % len(_OBJECTS)]
    rest //= len(_OBJECTS)
    qualifier = _QUALIFIERS[rest % len(_QUALIFIERS)]
    tail, slot = _TAILS[rest // len(_QUALIFIERS) % len(_TAILS)]
    goal = f"{verb.capitalize()} the {qualifier} {obj} {tail}"
    return _f(goal, (f"{obj}s.{verb}", {"which": qualifier, slot: "{" + slot + "}"}))


def family_at(rank: int) -> Family:
    """The family of Zipf rank ``rank``: the head first, then the long tail."""
    return HEAD[rank] if rank < len(HEAD) else tail_family(rank - len(HEAD))
