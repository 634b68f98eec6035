"""Template extraction, plan parametrisation and slot injection (pure)."""

from __future__ import annotations

import json

import pytest

from domain.events import PlanStep
from domain.templates import (
    conflicting_words,
    extract,
    fillable,
    inject,
    parametrize,
    referenced_slots,
    reuse,
)


@pytest.mark.parametrize(
    ("goal", "template", "slots"),
    [
        ("Book flight to Paris", "Book flight to {DESTINATION}", {"DESTINATION": "Paris"}),
        (
            "Book a flight from New York to San Francisco on 2026-12-01 at 10:30am.",
            "Book a flight from {ORIGIN} to {DESTINATION} on {DATE} at {TIME}",
            {
                "ORIGIN": "New York",
                "DESTINATION": "San Francisco",
                "DATE": "2026-12-01",
                "TIME": "10:30am",
            },
        ),
        ("Refund order 12345", "Refund order {ORDER_ID}", {"ORDER_ID": "12345"}),
        (
            "Send the weekly  sales report to alice@example.com",
            "Send the weekly sales report to {EMAIL}",
            {"EMAIL": "alice@example.com"},
        ),
        (
            "Summarize the PDF at https://a.example/x.pdf.",
            "Summarize the PDF at {URL}",
            {"URL": "https://a.example/x.pdf"},
        ),
        (
            "Transfer $250 to account 99881",
            "Transfer {MONEY_USD} to account {ACCOUNT_ID}",
            {"MONEY_USD": "$250", "ACCOUNT_ID": "99881"},
        ),
        ("Convert 100 EUR to GBP", "Convert {MONEY_EUR} to GBP", {"MONEY_EUR": "100 EUR"}),
        (
            'Buy 10 shares of "Acme Corp"',
            'Buy {NUMBER} shares of "{QUOTED}"',
            {"NUMBER": "10", "QUOTED": "Acme Corp"},
        ),
        (
            "Book hotel in Paris from Dec 3 to Dec 5",
            "Book hotel in {LOCATION} from {DATE} to {DATE_2}",
            {"LOCATION": "Paris", "DATE": "Dec 3", "DATE_2": "Dec 5"},
        ),
        (
            "Schedule a meeting with Alice Smith next Friday",
            "Schedule a meeting with {NAME} {DATE}",
            {"NAME": "Alice Smith", "DATE": "next Friday"},
        ),
        ("Generate the daily KPI summary", "Generate the daily KPI summary", {}),
    ],
)
def test_goals_become_templates_with_typed_slots(
    goal: str, template: str, slots: dict[str, str]
) -> None:
    extracted = extract(goal)
    assert extracted.text == template
    assert dict(extracted.slots) == slots


def test_goals_differing_only_in_slot_values_share_a_template() -> None:
    assert extract("Refund order 12345").text == extract("Refund order 99881").text
    assert extract("Book flight to Paris").text == extract("Book flight to London").text
    assert extract("Transfer $5 to account 1").text != extract("Transfer 5 EUR to account 1").text


def step(tool: str, **arguments: object) -> PlanStep:
    return PlanStep("s1", tool, json.dumps(arguments))


def test_a_plan_is_stored_with_placeholders_and_refilled_with_new_values() -> None:
    goal = extract("Book a flight from Berlin to Paris on 2026-12-01 for 2 people")
    plan = [
        step("flights.search", route="Berlin -> Paris", date="2026-12-01"),
        step("flights.book", destination="Paris", seats=2, note="2026-12-01"),
    ]
    stored = parametrize(plan, goal.slots)
    assert stored is not None
    assert json.loads(stored[0].arguments_json) == {
        "route": "{{ORIGIN}} -> {{DESTINATION}}",
        "date": "{{DATE}}",
    }
    assert json.loads(stored[1].arguments_json)["seats"] == "{{NUMBER:number}}"
    assert referenced_slots(stored) == {"ORIGIN", "DESTINATION", "DATE", "NUMBER"}

    new = extract("Book a flight from Oslo to Rome on 2027-01-15 for 3 people")
    filled = inject(stored, new.slots)
    assert filled is not None
    assert json.loads(filled[0].arguments_json) == {"route": "Oslo -> Rome", "date": "2027-01-15"}
    assert json.loads(filled[1].arguments_json) == {
        "destination": "Rome",
        "seats": 3,
        "note": "2027-01-15",
    }
    assert [s.tool for s in filled] == ["flights.search", "flights.book"]


def test_money_amounts_keep_their_number_type_and_currency() -> None:
    goal = extract("Transfer $250 to account 1234")
    stored = parametrize([step("payments.transfer", amount=250, account="1234")], goal.slots)
    assert stored is not None
    filled = inject(stored, extract("Transfer $1,075.50 to account 9876").slots)
    assert filled is not None
    assert json.loads(filled[0].arguments_json) == {"amount": 1075.5, "account": "9876"}


def test_a_plan_that_spells_a_value_another_way_is_not_stored() -> None:
    goal = extract("Book flight to Paris")
    assert parametrize([step("flights.book", airport="CDG")], goal.slots) is None
    # a value inside a longer word is not that value
    assert parametrize([step("flights.book", note="Parisian")], goal.slots) is None


def test_a_plan_with_placeholder_lookalikes_is_not_stored() -> None:
    goal = extract("Refund order 12345")
    assert parametrize([step("payments.refund", order=12345, x="{{A}}")], goal.slots) is None


def test_unfillable_slots_make_a_miss_never_a_partial_plan() -> None:
    stored = (step("flights.book", destination="{{DESTINATION}}", date="{{DATE}}"),)
    assert inject(stored, {"DESTINATION": "Rome"}) is None
    numeric = (step("orders.refund", order="{{ORDER_ID:number}}"),)
    assert inject(numeric, {"ORDER_ID": "A-17x"}) is None
    assert not fillable({"DESTINATION"}, stored, {"DESTINATION": "Rome"})
    # an extra slot in the new goal would be silently dropped: also a miss
    assert not fillable({"DESTINATION"}, stored[:0], {"DESTINATION": "Rome", "DATE": "Monday"})
    assert fillable({"DESTINATION", "DATE"}, stored, {"DESTINATION": "Rome", "DATE": "Monday"})


def test_a_deciding_word_the_plan_uses_blocks_reuse() -> None:
    plan = (step("broker.buy", quantity="{{NUMBER:number}}", symbol="{{QUOTED}}"),)
    stored = 'Buy {NUMBER} shares of "{QUOTED}"'
    assert conflicting_words(stored, 'Sell {NUMBER} shares of "{QUOTED}"', plan) == {"buy"}
    assert conflicting_words(stored, 'Please buy {NUMBER} shares of "{QUOTED}"', plan) == set()
    goal = extract('Sell 5 shares of "Globex"')
    assert reuse(stored, ["NUMBER", "QUOTED"], plan, goal, 0.92, 0.85) is None


def test_reuse_fills_a_similar_enough_plan_and_misses_below_the_threshold() -> None:
    stored = (step("orders.refund", order="{{ORDER_ID:number}}"),)
    goal = extract("Refund order 777")
    hit = reuse("Refund order {ORDER_ID}", ["ORDER_ID"], stored, goal, 1.0, 0.85)
    assert hit is not None
    assert json.loads(hit[0].arguments_json) == {"order": 777}
    assert reuse("Refund order {ORDER_ID}", ["ORDER_ID"], stored, goal, 0.84, 0.85) is None
