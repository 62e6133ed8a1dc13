"""The engine's contract: replay equals incremental application, states are not mutated,
states survive JSON, scores are clamped, and the breakdown explains every point."""

from __future__ import annotations

import copy
import dataclasses
import json
import random
from datetime import datetime

import pytest

from app.scoring.defaults import default_rule_set
from app.scoring.engine import (
    LeadFacts,
    ScoringEvent,
    advance,
    apply_event,
    apply_event_inplace,
    compile_rule_set,
    empty_state,
    evaluate,
    replay,
)
from tests.factories import T0, moment

from .helpers import apply_all, compiled, event, rule

DEFAULTS = compile_rule_set(default_rule_set())
KINDS = ["page", "page", "Product Viewed", "Product Added", "Product Removed", "Checkout Started",
         "Cart Abandoned", "Order Completed", "Subscribed", "Unsubscribed", "Contact Requested",
         "identify", "Custom Thing"]  # fmt: skip


def _journey(seed: int, count: int = 80) -> list[ScoringEvent]:
    rnd = random.Random(seed)
    events, when, visit = [], T0, 1
    for _ in range(count):
        gap = rnd.choice([5, 60, 600, 3600, 86400])
        when = when.fromtimestamp(when.timestamp() + rnd.uniform(0, gap), when.tzinfo)
        visit += gap >= 3600
        events.append(event(rnd.choice(KINDS), when, visit=visit, category="fridges"))
    return events


FACTS = LeadFacts(city="Kazan", visits=4, time_on_site_seconds=700, contacts={"email": "a@b.c"},
                  last_seen_at=T0)  # fmt: skip


@pytest.mark.parametrize("seed", range(6))
def test_replay_equals_incremental_application(seed: int) -> None:
    events = _journey(seed)
    now = moment(days=30)
    incremental = apply_all(DEFAULTS, events, FACTS)
    stepped = evaluate(DEFAULTS, incremental.state, FACTS, now)
    replayed = replay(DEFAULTS, events, FACTS, now)
    assert replayed == stepped


@pytest.mark.parametrize("seed", range(6))
def test_advance_in_place_equals_apply_event_after_every_event(seed: int) -> None:
    """Ingestion's fast path (in place, no breakdown) gives exactly apply_event's state, score
    and temperature, event by event, late events and hard rules included."""
    events = _journey(seed + 100)
    random.Random(seed).shuffle(events[40:])  # some arrive late
    state_a = empty_state()
    state_b = empty_state()
    temperatures = set()
    # Outside the default's delivery area: Kazan's 16 points would keep some journeys warm.
    facts = dataclasses.replace(FACTS, city="Samara")
    for item in events:
        result = apply_event(DEFAULTS, state_a, item, facts)
        state_a = result.state
        score = advance(DEFAULTS, state_b, item, facts)
        assert score == result.score
        assert state_b["temperature"] == result.temperature
        assert state_b == state_a
        temperatures.add(result.temperature)
    assert len(temperatures) >= 2  # the journey moves the temperature (hysteresis exercised)


def test_advance_rejects_unknown_state_versions() -> None:
    with pytest.raises(ValueError, match="state version"):
        advance(DEFAULTS, {**empty_state(), "v": 99}, event("page"), FACTS)


def test_replay_steps_temperature_like_ingestion() -> None:
    rules = compiled(behaviour=[rule("big", "Big", 61), rule("down", "Down", -10)],
                     hysteresis_points=5, min_hold="30m")  # fmt: skip
    events = [event("Big", T0), event("Down", moment(minutes=1))]  # hot, then 51 inside min_hold
    assert replay(rules, events, LeadFacts(), moment(minutes=2)).temperature == "hot"
    assert replay(rules, events, LeadFacts(), moment(minutes=31)).temperature == "warm"


def test_apply_event_and_evaluate_do_not_mutate_the_state() -> None:
    state = apply_all(DEFAULTS, _journey(1, 30), FACTS).state
    before = copy.deepcopy(state)
    apply_event(DEFAULTS, state, event("Product Added", moment(days=40)), FACTS)
    evaluate(DEFAULTS, state, FACTS, moment(days=60))
    assert state == before


@pytest.mark.parametrize("seed", range(6))
def test_evaluating_a_shared_state_gives_the_same_result_and_leaves_it_as_it_was(seed) -> None:
    """Preview evaluates stored states without copying their rules (`shared`): the result
    must be a copy's, at moments where decay, hysteresis and holds move the temperature, and
    the state must not change."""
    state = apply_all(DEFAULTS, _journey(seed, 40), FACTS).state
    before = copy.deepcopy(state)
    for days in (0, 1, 3, 10, 60):
        now = moment(days=days)
        assert evaluate(DEFAULTS, state, FACTS, now, explain=False, shared=True) == evaluate(
            DEFAULTS, state, FACTS, now, explain=False
        )
        assert state == before


def test_apply_event_inplace_then_evaluate_gives_the_same_score() -> None:
    events = _journey(2, 40)
    state = empty_state()
    for item in events:
        apply_event_inplace(DEFAULTS, state, item)
    now = moment(days=30)
    assert evaluate(DEFAULTS, state, FACTS, now).score == replay(DEFAULTS, events, FACTS, now).score


def test_state_survives_a_json_round_trip() -> None:
    events = _journey(3, 40)
    first, rest = events[:25], events[25:]
    stored = json.loads(json.dumps(apply_all(DEFAULTS, first, FACTS).state))
    resumed = apply_all(DEFAULTS, rest, FACTS, state=stored)
    straight = apply_all(DEFAULTS, events, FACTS)
    assert resumed == straight


def test_state_size_does_not_grow_with_events() -> None:
    short = json.dumps(apply_all(DEFAULTS, _journey(4, 100), FACTS).state)
    long = json.dumps(replay(DEFAULTS, _journey(4, 2000), FACTS, moment(days=400)).state)
    assert len(long) < 3 * len(short) + 2000


def test_an_empty_json_column_is_an_empty_state() -> None:
    assert apply_event(DEFAULTS, {}, event("page"), FACTS).score > 0
    assert evaluate(DEFAULTS, {}, LeadFacts(), T0).temperature == "cold"


def test_unknown_state_versions_and_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValueError, match="state version"):
        evaluate(DEFAULTS, {"v": 99}, FACTS, T0)
    with pytest.raises(ValueError, match="timezone"):
        evaluate(DEFAULTS, empty_state(), FACTS, datetime(2025, 1, 1))  # noqa: DTZ001


def test_score_is_clamped_to_max_score_and_rounded() -> None:
    rules = compiled(max_score=50, thresholds={"warm": 20, "hot": 40},
                     behaviour=[rule("big", "Big", 80), rule("third", "Third", 1 / 3)])  # fmt: skip
    assert apply_all(rules, [event("Big")]).score == 50.0
    assert apply_all(rules, [event("Third")]).score == 0.33
    assert apply_all(rules, [event("Third")]).rule_set_version == 1


def test_breakdown_lists_every_contributing_rule_with_its_latest_events() -> None:
    pages = [event("page", moment(minutes=i)) for i in range(8)]
    added = event("Product Added", moment(minutes=9))
    result = apply_all(DEFAULTS, [*pages, added], FACTS)
    items = {i.rule_id: i for i in result.breakdown}
    assert list(items) == [
        "page-view", "product-added", "city", "contacts", "visits", "time-on-site", "recency",
    ]  # fmt: skip
    assert items["city"].points == 16.0  # Kazan: coefficient 0.8 x weight 20
    assert items["page-view"].events == 8
    assert items["page-view"].message_ids == tuple(p.message_id for p in reversed(pages[-5:]))
    assert (items["product-added"].points, items["product-added"].message_ids) == (
        15.0,
        (added.message_id,),
    )
    assert items["contacts"].kind == "fit"
    assert result.score == pytest.approx(sum(i.points for i in result.breakdown), abs=0.05)


def test_rules_dropped_from_a_new_version_stop_counting() -> None:
    v1 = compiled(behaviour=[rule("a", "page", 5), rule("b", "page", 7)])
    v2 = compiled(version=2, behaviour=[rule("a", "page", 5)])
    state = apply_all(v1, [event("page")]).state
    result = evaluate(v2, state, LeadFacts(), T0)
    assert (result.score, result.rule_set_version) == (5.0, 2)
    assert result.state["rule_set_version"] == 2
