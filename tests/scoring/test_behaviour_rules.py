"""Behaviour rules: frequencies, caps, negative points, and exact, order-independent decay."""

from __future__ import annotations

import random

import pytest

from app.scoring.engine import LeadFacts, apply_event, empty_state, evaluate, replay
from tests.factories import T0, moment

from .helpers import apply_all, compiled, event, points_by_rule, rule, score_at

WEEK = {"half_life": "7d"}


def test_every_time_adds_points_for_each_event() -> None:
    rules = compiled(behaviour=[rule("view", "Product Viewed", 3)])
    result = apply_all(rules, [event("Product Viewed") for _ in range(3)])
    assert result.score == 9.0
    assert result.breakdown[0].events == 3


def test_once_per_lead_counts_only_the_first_event() -> None:
    rules = compiled(behaviour=[rule("sub", "Subscribed", 10, frequency="once_per_lead")])
    events = [event("Subscribed", moment(days=d), visit=d + 1) for d in range(3)]
    result = apply_all(rules, events)
    assert result.score == 10.0
    assert result.breakdown[0].events == 1
    assert result.breakdown[0].message_ids == (events[0].message_id,)


def test_once_per_lead_late_earlier_event_replaces_the_counted_one() -> None:
    rules = compiled(
        decay=WEEK, behaviour=[rule("sub", "Subscribed", 10, frequency="once_per_lead")]
    )
    early, late = event("Subscribed", T0), event("Subscribed", moment(days=7))
    result = apply_all(rules, [late, early])
    assert result.breakdown[0].message_ids == (early.message_id,)
    assert result.breakdown[0].events == 1
    assert evaluate(rules, result.state, LeadFacts(), moment(days=7)).score == 5.0


def test_once_per_visit_counts_one_event_per_visit() -> None:
    rules = compiled(behaviour=[rule("back", "*", 3, frequency="once_per_visit")])
    visits = [1, 1, 2, 3, 3, 3, 2]
    result = apply_all(
        rules, [event("page", moment(minutes=i), visit=v) for i, v in enumerate(visits)]
    )
    assert result.score == 9.0
    assert result.breakdown[0].events == 3


def test_once_per_visit_state_stays_bounded() -> None:
    rules = compiled(behaviour=[rule("back", "*", 1, frequency="once_per_visit")])
    events = [event("page", moment(hours=v), visit=v) for v in range(1, 41)]
    result = apply_all(rules, [*events, event("page", moment(hours=1, minutes=5), visit=1)])
    entry = result.state["rules"]["back"]
    assert result.score == 40.0
    assert len(entry["visits"]) <= 16
    assert len(entry["ids"]) == 5


def test_cap_limits_a_rules_total() -> None:
    rules = compiled(behaviour=[rule("page", "page", 1, cap=5)])
    result = apply_all(rules, [event("page") for _ in range(10)])
    assert result.score == 5.0
    item = result.breakdown[0]
    assert (item.points_raw, item.points, item.events) == (10.0, 5.0, 10)


def test_cap_applies_to_the_decayed_total() -> None:
    rules = compiled(decay=WEEK, behaviour=[rule("view", "Product Viewed", 3, cap=15)])
    events = [event("Product Viewed", T0) for _ in range(10)]
    assert score_at(rules, events, moment(days=7)) == 15.0  # 30 decays to 15: still at the cap
    assert score_at(rules, events, moment(days=14)) == 7.5


def test_negative_points_take_score_away_and_total_never_goes_below_zero() -> None:
    rules = compiled(
        behaviour=[rule("sub", "Subscribed", 20), rule("unsub", "Unsubscribed", -15, cap=15)]
    )
    assert apply_all(rules, [event("Subscribed"), event("Unsubscribed")]).score == 5.0
    alone = apply_all(rules, [event("Unsubscribed"), event("Unsubscribed")])
    assert alone.score == 0.0
    # The cap bounds negative rules too; the score's floor is a line of its own.
    assert points_by_rule(alone) == {"unsub": -15.0, "min_score": 15.0}


def test_product_view_counts_half_after_its_half_life() -> None:
    rules = compiled(decay=WEEK, behaviour=[rule("view", "Product Viewed", 3)])
    views = [event("Product Viewed", T0)]
    assert score_at(rules, views, T0) == 3.0
    assert score_at(rules, views, moment(days=7)) == 1.5
    assert score_at(rules, views, moment(days=14)) == 0.75


def test_rule_half_life_overrides_the_default_and_never_disables_decay() -> None:
    rules = compiled(
        decay=WEEK,
        behaviour=[
            rule("fast", "Checkout Started", 40, half_life="12h"),
            rule("kept", "Order Completed", 10, half_life="never"),
            rule("seconds", "Subscribed", 8, half_life=3600),
        ],
    )
    events = [event("Checkout Started"), event("Order Completed"), event("Subscribed")]
    result = evaluate(rules, apply_all(rules, events).state, LeadFacts(), moment(hours=12))
    assert points_by_rule(result) == {"fast": 20.0, "kept": 10.0, "seconds": 0.0}


def test_no_default_half_life_means_no_decay() -> None:
    rules = compiled(behaviour=[rule("view", "Product Viewed", 3)])
    assert score_at(rules, [event("Product Viewed")], moment(days=365)) == 3.0


def test_event_after_now_never_counts_more_than_its_points() -> None:
    rules = compiled(decay=WEEK, behaviour=[rule("view", "Product Viewed", 3)])
    result = apply_all(rules, [event("Product Viewed", moment(days=7))])
    assert evaluate(rules, result.state, LeadFacts(), T0).score == 3.0


def _mixed_events(seed: int) -> list:
    rnd = random.Random(seed)
    kinds = ["page", "Product Viewed", "Product Added", "Product Removed", "Subscribed"]
    return [
        event(rnd.choice(kinds), moment(hours=rnd.uniform(0, 24 * 40)), visit=rnd.randint(1, 6))
        for _ in range(60)
    ]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_arrival_order_does_not_change_the_score(seed: int) -> None:
    rules = compiled(
        decay=WEEK,
        behaviour=[
            rule("page", "page", 1),
            rule("view", "Product Viewed", 3, cap=15, half_life="2d"),
            rule("add", "Product Added", 10),
            rule("removed", "Product Removed", -3, cap=9),
            rule("sub", "Subscribed", 10, frequency="once_per_lead"),
            rule("visit", "*", 3, frequency="once_per_visit", half_life="never"),
        ],
    )
    events = _mixed_events(seed)
    now = moment(days=41)
    in_time_order = sorted(events, key=lambda e: e.at)
    shuffled = events[:]
    random.Random(seed + 100).shuffle(shuffled)
    expected = replay(rules, in_time_order, LeadFacts(), now)
    for order in (events, shuffled, list(reversed(in_time_order))):
        result = replay(rules, order, LeadFacts(), now)
        assert result.score == pytest.approx(expected.score, abs=0.01)
        assert points_by_rule(result) == pytest.approx(points_by_rule(expected), abs=0.01)
        assert {i.rule_id: i.events for i in result.breakdown} == {
            i.rule_id: i.events for i in expected.breakdown
        }


def test_decay_matches_the_closed_form_sum() -> None:
    rules = compiled(decay={"half_life": "1d"}, behaviour=[rule("view", "Product Viewed", 4)])
    offsets = [0.0, 0.5, 3.0, 1.25, 2.0]  # days, out of order
    now_days = 4.0
    expected = sum(4 * 2 ** (-(now_days - d)) for d in offsets)
    state = empty_state()
    for d in offsets:
        state = apply_event(
            rules, state, event("Product Viewed", moment(days=d)), LeadFacts()
        ).state
    assert evaluate(rules, state, LeadFacts(), moment(days=now_days)).score == round(expected, 2)


def test_very_long_gaps_do_not_overflow() -> None:
    rules = compiled(decay={"half_life": "1s"}, behaviour=[rule("view", "Product Viewed", 5)])
    events = [event("Product Viewed", moment(days=3000)), event("Product Viewed", T0)]
    assert score_at(rules, events, moment(days=3000)) == 5.0
