"""Temperature: thresholds, hysteresis margin, minimum hold, and became-hot bookkeeping."""

from __future__ import annotations

from datetime import datetime

from app.scoring.engine import (
    CompiledRuleSet,
    LeadFacts,
    ScoringEvent,
    apply_event,
    empty_state,
    evaluate,
)
from tests.factories import T0, moment

from .helpers import apply_all, compiled, event, rule

HOLD = {"hysteresis_points": 5, "min_hold": "30m"}


def _rules() -> CompiledRuleSet:
    behaviour = [rule("big", "Big", 61), rule("warm", "Warm", 30), rule("down", "Down", -1)]
    return compiled(behaviour=behaviour, **HOLD)


def _downs(count: int, when: datetime) -> list[ScoringEvent]:
    return [event("Down", when) for _ in range(count)]


def test_thresholds_give_cold_warm_hot() -> None:
    rules = _rules()
    assert apply_all(rules, _downs(1, T0)).temperature == "cold"
    assert apply_all(rules, [event("Warm")]).temperature == "warm"
    assert apply_all(rules, [event("Big")]).temperature == "hot"


def test_no_flicker_back_to_warm_one_second_after_turning_hot() -> None:
    rules = _rules()
    hot = apply_all(rules, [event("Big", T0)])
    assert (hot.temperature, hot.changed, hot.became_hot_at) == ("hot", True, T0)
    nudged = apply_all(rules, _downs(4, moment(seconds=1)), state=hot.state)
    assert (nudged.score, nudged.temperature, nudged.changed) == (57.0, "hot", False)
    crashed = apply_all(rules, _downs(30, moment(seconds=1)), state=hot.state)
    assert (crashed.score, crashed.temperature) == (31.0, "hot")  # held for min_hold
    later = evaluate(rules, crashed.state, LeadFacts(), moment(minutes=31))
    assert (later.temperature, later.previous_temperature, later.changed) == ("warm", "hot", True)
    assert later.became_hot_at is None


def test_hot_drops_only_below_hot_minus_margin_after_min_hold() -> None:
    rules = _rules()
    hot = apply_all(rules, [event("Big", T0)])
    within_margin = apply_all(rules, _downs(6, moment(minutes=31)), state=hot.state)
    assert (within_margin.score, within_margin.temperature) == (55.0, "hot")
    below = apply_all(rules, _downs(1, moment(minutes=32)), state=within_margin.state)
    assert (below.score, below.temperature) == (54.0, "warm")


def test_warm_has_the_same_margin() -> None:
    rules = _rules()
    warm = apply_all(rules, [event("Warm", T0)])
    kept = apply_all(rules, _downs(3, moment(hours=1)), state=warm.state)
    assert (kept.score, kept.temperature) == (27.0, "warm")
    dropped = apply_all(rules, _downs(3, moment(hours=1)), state=kept.state)
    assert (dropped.score, dropped.temperature) == (24.0, "cold")


def test_raising_is_immediate_even_within_min_hold() -> None:
    rules = _rules()
    warm = apply_all(rules, [event("Warm", T0)])
    hot = apply_all(rules, [event("Big", moment(seconds=1))], state=warm.state)
    assert (hot.temperature, hot.previous_temperature, hot.became_hot_at) == (
        "hot",
        "warm",
        moment(seconds=1),
    )


def test_became_hot_at_is_kept_while_hot_and_reset_on_the_next_heat_up() -> None:
    rules = _rules()
    hot = apply_all(rules, [event("Big", T0)])
    still = apply_all(rules, [event("Warm", moment(minutes=5))], state=hot.state)
    assert (still.became_hot_at, still.changed) == (T0, False)
    cooled = apply_all(rules, _downs(80, moment(hours=1)), state=still.state)
    assert cooled.temperature == "warm"  # one step down, then held for min_hold
    cooled = evaluate(rules, cooled.state, LeadFacts(), moment(hours=1, minutes=30))
    assert cooled.temperature == "cold"
    again = apply_all(rules, [event("Big", moment(hours=2))], state=cooled.state)
    assert again.became_hot_at == moment(hours=2)


def test_decay_cools_a_lead_when_evaluated_later() -> None:
    rules = compiled(behaviour=[rule("big", "Big", 61, half_life="1h")], **HOLD)
    state = apply_event(rules, empty_state(), event("Big", T0), LeadFacts()).state
    held = evaluate(rules, state, LeadFacts(), moment(minutes=10))
    assert held.score < 55
    assert held.temperature == "hot"
    cooled = evaluate(rules, state, LeadFacts(), moment(minutes=31))
    assert (cooled.temperature, cooled.changed) == ("warm", True)


def test_evaluate_does_not_step_back_in_time() -> None:
    rules = _rules()
    hot = apply_all(rules, [event("Big", T0)])
    cooled_later = apply_all(rules, _downs(40, moment(hours=1)), state=hot.state)
    assert (cooled_later.score, cooled_later.temperature) == (21.0, "warm")
    # A late event from before is evaluated at the last evaluation time, not its own: at its
    # own time (T0 + 1 min) the lead was hot and inside min_hold, so it would stay hot.
    late = apply_all(rules, [event("Warm", moment(minutes=1))], state=cooled_later.state)
    assert (late.score, late.temperature, late.changed) == (51.0, "warm", False)
    assert late.state["at"] == moment(hours=1).timestamp()
