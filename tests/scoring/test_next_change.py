"""When a lead next needs a look with no new event (engine.next_change_at): a hold ending, a
hard rule's hold ending, decay crossing a threshold or moving the score a whole point, a
recency band ending. Each answer is checked against `evaluate` on both sides of it."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.scoring.engine import (
    CompiledRuleSet,
    LeadFacts,
    ScoreResult,
    evaluate,
    next_change_at,
)
from tests.factories import T0

from .helpers import apply_all, compiled, event, rule

SECOND = timedelta(seconds=1)


def shows_other(
    rules: CompiledRuleSet, stored: ScoreResult, facts: LeadFacts, at: datetime
) -> bool:
    later = evaluate(rules, stored.state, facts, at)
    return later.temperature != stored.temperature or abs(later.score - stored.score) >= 1


def test_hold_of_a_hard_rule_ends_at_its_until() -> None:
    rules = compiled(
        behaviour=[rule("view", "page", 1)],
        hard=[{"id": "call", "steps": [{"event": "Call"}], "hold": "1h"}],
    )
    stored = apply_all(rules, [event("Call", T0)])
    assert stored.temperature == "hot"

    due = next_change_at(rules, stored.state, LeadFacts(), T0, stored.score)

    assert due == T0 + timedelta(hours=1)
    assert not shows_other(rules, stored, LeadFacts(), due - SECOND)
    assert evaluate(rules, stored.state, LeadFacts(), due).temperature == "cold"


def test_minimum_hold_keeps_a_lead_warm_until_it_ends() -> None:
    # 40 points, then -15 five minutes later: 25 is below warm, but the 30 min hold holds.
    rules = compiled(behaviour=[rule("big", "Big", 40), rule("down", "Down", -15)], min_hold="30m")
    stored = apply_all(rules, [event("Big", T0), event("Down", T0 + timedelta(minutes=5))])
    assert (stored.temperature, stored.score) == ("warm", 25)

    due = next_change_at(rules, stored.state, LeadFacts(), T0 + timedelta(minutes=5), 25)

    assert due == T0 + timedelta(minutes=30)
    assert evaluate(rules, stored.state, LeadFacts(), due).temperature == "cold"
    assert evaluate(rules, stored.state, LeadFacts(), due - SECOND).temperature == "warm"


def test_decay_crosses_the_warm_threshold_at_the_computed_moment() -> None:
    # 40 points, half-life 1 day, warm at 30 (no margin): cold after log2(40/30) days.
    rules = compiled(behaviour=[rule("big", "Big", 40, half_life="1d")])
    stored = apply_all(rules, [event("Big", T0)])
    facts = LeadFacts()
    crossing = T0 + timedelta(days=math.log2(40 / 29.995))  # the score is rounded to 0.01
    at, shown = T0, stored
    looks = 0
    while True:
        due = next_change_at(rules, shown.state, facts, at, shown.score)
        assert due is not None
        looks += 1
        later = evaluate(rules, shown.state, facts, due)
        if later.temperature != shown.temperature:
            break
        if abs(later.score - shown.score) >= 1:
            shown = later  # the refresher writes a whole point's change
        at = due
    # A whole point is lost every ~0.03 days here, so the refresher writes on the way down;
    # the temperature changes within a second of the exact crossing, never before it.
    assert crossing - SECOND <= due <= crossing + SECOND
    assert looks < 60


def test_score_moves_a_whole_point() -> None:
    rules = compiled(
        behaviour=[rule("view", "page", 10, half_life="7d")],
        thresholds={"warm": 300, "hot": 600},
        max_score=1000,
    )
    stored = apply_all(rules, [event("page", T0)])
    at = T0
    due = next_change_at(rules, stored.state, LeadFacts(), at, stored.score)
    while due is not None and not shows_other(rules, stored, LeadFacts(), due):
        at, due = due, next_change_at(rules, stored.state, LeadFacts(), due, stored.score)
    assert due is not None
    exact = T0 + timedelta(days=7 * math.log2(10 / 9.005))
    assert exact - SECOND <= due <= exact + SECOND
    assert not shows_other(rules, stored, LeadFacts(), due - 2 * SECOND)


def test_nothing_that_decays_means_no_look_is_needed() -> None:
    rules = compiled(behaviour=[rule("view", "page", 10)])
    stored = apply_all(rules, [event("page", T0) for _ in range(4)])
    assert stored.temperature == "warm"
    assert next_change_at(rules, stored.state, LeadFacts(), T0, stored.score) is None


def test_a_stale_stored_score_is_due_at_once() -> None:
    rules = compiled(behaviour=[rule("view", "page", 10, half_life="1h")])
    stored = apply_all(rules, [event("page", T0)])
    later = T0 + timedelta(hours=2)
    assert next_change_at(rules, stored.state, LeadFacts(), later, stored.score) == later


def test_recency_band_ends_an_hour_after_the_last_visit() -> None:
    recency = {
        "id": "recent",
        "type": "range",
        "field": "recency_hours",
        "weight": 40,
        "bands": [{"max": 1, "coefficient": 1}],
    }
    rules = compiled(behaviour=[rule("view", "page", 1)], fit=[recency])
    facts = LeadFacts(last_seen_at=T0)
    stored = apply_all(rules, [event("page", T0)], facts)
    assert stored.temperature == "warm"

    due = next_change_at(rules, stored.state, facts, T0, stored.score)

    assert due == T0 + timedelta(hours=1)


@settings(max_examples=150, deadline=None)
@given(
    points=st.lists(st.integers(min_value=-20, max_value=80), min_size=1, max_size=4),
    half_lives=st.lists(st.integers(min_value=60, max_value=30 * 86400), min_size=4, max_size=4),
    offsets=st.lists(st.integers(min_value=0, max_value=7200), min_size=1, max_size=6),
    hysteresis=st.sampled_from([0, 5]),
    hold=st.sampled_from(["0s", "10m"]),
)
# One point decaying to nothing shows 0 once rounding to 0.01 reaches it, a whole point down.
@example(points=[1], half_lives=[88, 60, 60, 60], offsets=[0], hysteresis=0, hold="0s")
def test_nothing_shows_differently_before_the_due_time(
    points: list[int], half_lives: list[int], offsets: list[int], hysteresis: int, hold: str
) -> None:
    """Property: until a second before the answer the lead looks as stored (checked at many
    moments), and at the answer, when it is near, it does not."""
    behaviour = [
        rule(f"r{i}", f"E{i}", p, half_life=half_lives[i], cap=70) for i, p in enumerate(points)
    ]
    rules = compiled(behaviour=behaviour, hysteresis_points=hysteresis, min_hold=hold)
    events = [
        event(f"E{i % len(points)}", T0 + timedelta(seconds=o)) for i, o in enumerate(offsets)
    ]
    events.sort(key=lambda e: e.at)
    stored = apply_all(rules, events)
    now = events[-1].at
    due = next_change_at(rules, stored.state, LeadFacts(), now, stored.score)
    end = due if due is not None else now + timedelta(days=400)
    span = (end - now).total_seconds()
    # Only decaying rules of opposite signs may undo a change between probes.
    monotone = all(p >= 0 for p in points)
    for k in range(1, 40):
        moment = now + timedelta(seconds=span * k / 40)
        if monotone and moment < end - SECOND:
            assert not shows_other(rules, stored, LeadFacts(), moment)
    if due is not None and due - now < timedelta(seconds=200):  # near: to the second
        assert shows_other(rules, stored, LeadFacts(), due)
