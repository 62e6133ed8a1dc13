"""Hard rules: event sequences that make a lead hot whatever its score, for a while."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pytest

from app.scoring.engine import CompiledRuleSet, LeadFacts, ScoringEvent, evaluate, replay
from tests.factories import T0, moment

from .helpers import apply_all, compiled, event

CONTACT = {"id": "contact", "label": "Asked for a call",
           "steps": [{"event": "Contact Requested"}], "hold": "24h"}  # fmt: skip
ABANDON = {"id": "abandon", "steps": [{"event": "Checkout Started"}, {"event": "Cart Abandoned"}],
           "within": "1h", "hold": "1h"}  # fmt: skip


def _rules(*hard: dict[str, Any]) -> CompiledRuleSet:
    return compiled(hard=list(hard), hysteresis_points=5, min_hold="30m")


def _temperature(rules: CompiledRuleSet, events: list[ScoringEvent], now: datetime) -> str:
    return evaluate(rules, apply_all(rules, events).state, LeadFacts(), now).temperature


def test_single_step_makes_the_lead_hot_at_once_and_holds() -> None:
    rules = _rules(CONTACT)
    request = event("Contact Requested", T0)
    result = apply_all(rules, [request])
    assert (result.score, result.temperature, result.changed) == (0.0, "hot", True)
    assert result.became_hot_at == T0
    [item] = result.breakdown
    assert (item.rule_id, item.kind, item.label, item.events) == (
        "contact",
        "hard",
        "Asked for a call",
        1,
    )
    assert item.message_ids == (request.message_id,)
    assert item.hot_until == moment(hours=24)
    assert _temperature(rules, [request], moment(hours=23, minutes=59)) == "hot"
    after = evaluate(rules, result.state, LeadFacts(), moment(hours=24))
    assert (after.temperature, after.breakdown) == ("cold", [])


def test_sequence_within_the_window_fires() -> None:
    rules = _rules(ABANDON)
    events = [event("Checkout Started", T0), event("Cart Abandoned", moment(minutes=50))]
    result = apply_all(rules, events)
    assert result.temperature == "hot"
    assert result.breakdown[0].message_ids == (events[1].message_id, events[0].message_id)
    assert _temperature(rules, events, moment(minutes=50 + 59)) == "hot"
    assert _temperature(rules, events, moment(minutes=50 + 61)) == "cold"


def test_sequence_outside_the_window_does_not_fire() -> None:
    rules = _rules(ABANDON)
    events = [event("Checkout Started", T0), event("Cart Abandoned", moment(minutes=61))]
    assert apply_all(rules, events).temperature == "cold"


def test_steps_must_happen_in_order() -> None:
    rules = _rules(ABANDON)
    events = [event("Cart Abandoned", T0), event("Checkout Started", moment(minutes=10))]
    assert apply_all(rules, events).temperature == "cold"


def test_a_late_arriving_first_step_still_completes_the_sequence() -> None:
    rules = _rules(ABANDON)
    abandon, checkout = event("Cart Abandoned", moment(minutes=30)), event("Checkout Started", T0)
    result = apply_all(rules, [abandon, checkout])
    assert result.temperature == "hot"
    assert result.breakdown[0].hot_until == moment(minutes=90)
    in_order = replay(rules, [checkout, abandon], LeadFacts(), moment(minutes=31))
    assert (
        in_order.breakdown
        == evaluate(rules, result.state, LeadFacts(), moment(minutes=31)).breakdown
    )


def test_step_conditions_use_the_same_language() -> None:
    rule = {**ABANDON, "steps": [
        {"event": "Checkout Started", "conditions": [
            {"field": "properties.value", "op": "gte", "value": 100}]},
        {"event": "Cart Abandoned"}]}  # fmt: skip
    rules = _rules(rule)
    cheap = [event("Checkout Started", T0, value=20), event("Cart Abandoned", moment(minutes=5))]
    dear = [event("Checkout Started", T0, value=200), event("Cart Abandoned", moment(minutes=5))]
    assert apply_all(rules, cheap).temperature == "cold"
    assert apply_all(rules, dear).temperature == "hot"


def test_one_event_cannot_be_two_steps() -> None:
    pricing = {"field": "url", "op": "contains", "value": "/pricing"}
    rule = {"id": "pricing-twice", "steps": [{"event": "page", "conditions": [pricing]}] * 2,
            "within": "10m"}  # fmt: skip
    rules = _rules(rule)
    once = [event("page", T0, url="/pricing")]
    twice = [*once, event("page", moment(minutes=3), url="/pricing")]
    assert apply_all(rules, once).temperature == "cold"
    result = apply_all(rules, twice)
    assert result.temperature == "hot"
    assert result.breakdown[0].hot_until == moment(minutes=13)  # hold defaults to within


def test_repeated_sequences_extend_the_hold_and_count() -> None:
    rules = _rules(ABANDON)
    events = [
        event("Checkout Started", T0),
        event("Cart Abandoned", moment(minutes=10)),
        event("Checkout Started", moment(hours=3)),
        event("Cart Abandoned", moment(hours=3, minutes=20)),
    ]
    result = apply_all(rules, events)
    assert result.breakdown[0].events == 2
    assert result.breakdown[0].hot_until == moment(hours=4, minutes=20)


@pytest.mark.parametrize("seed", range(5))
def test_hard_rules_do_not_depend_on_arrival_order(seed: int) -> None:
    rules = _rules(ABANDON, CONTACT)
    events = [
        event("Checkout Started", moment(minutes=0)),
        event("Checkout Started", moment(minutes=20)),
        event("Cart Abandoned", moment(minutes=75)),
        event("Contact Requested", moment(hours=5)),
        event("Cart Abandoned", moment(hours=30)),
    ]
    shuffled = events[:]
    random.Random(seed).shuffle(shuffled)
    for now in (moment(minutes=76), moment(hours=6), moment(hours=31)):
        expected = replay(rules, events, LeadFacts(), now)
        got = evaluate(rules, apply_all(rules, shuffled).state, LeadFacts(), now)
        assert [(i.rule_id, i.hot_until) for i in got.breakdown] == [
            (i.rule_id, i.hot_until) for i in expected.breakdown
        ]
